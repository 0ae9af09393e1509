"""Placeholders: concrete values locally, Fn::Sub for CloudFormation, variables kept."""

from __future__ import annotations

import pytest

from policies.documents import load_document
from policies.render import RenderError, render, render_cloudformation


def test_render_fills_placeholders_and_keeps_policy_variables():
    doc = {"Resource": ["arn:aws:iot:{region}:{account}:client/${iot:ClientId}", "{stack}-t"]}
    out = render(doc, region="eu-west-1", account="123456789012", stack="s")
    assert out == {"Resource": ["arn:aws:iot:eu-west-1:123456789012:client/${iot:ClientId}", "s-t"]}
    assert doc["Resource"][1] == "{stack}-t"  # the original is untouched


def test_cloudformation_uses_fn_sub_and_escapes_policy_variables():
    doc = {
        "Effect": "Allow",
        "Resource": [
            "arn:aws:iot:{region}:{account}:topicfilter/chat/in/${cognito-identity.amazonaws.com:sub}",
            "*",
        ],
    }
    out = render_cloudformation(doc)
    assert out["Effect"] == "Allow"
    assert out["Resource"][1] == "*"
    assert out["Resource"][0] == {
        "Fn::Sub": "arn:aws:iot:${AWS::Region}:${AWS::AccountId}:"
        "topicfilter/chat/in/${!cognito-identity.amazonaws.com:sub}"
    }


def test_unknown_placeholder_is_refused():
    with pytest.raises(RenderError, match="partition"):
        render({"R": "arn:{partition}:x"}, region="r", account="a", stack="s")


def test_project_document_renders_for_both_targets():
    doc = load_document("iot", "user")
    local = render(doc, region="us-east-1", account="000000000000", stack="iotchat")
    assert "{region}" not in str(local)
    cfn = render_cloudformation(doc)
    assert "AWS::Region" in str(cfn)
