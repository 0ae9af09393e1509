"""The project's one ARN reader (policies/arns.py)."""

from __future__ import annotations

import pytest

from policies.arns import arn_resource_name, lambda_function_name, parse_arn


def test_parse_arn_keeps_placeholders() -> None:
    arn = parse_arn("arn:aws:lambda:{region}:{account}:function:{stack}-x")
    assert arn is not None
    assert (arn.service, arn.region, arn.resource) == ("lambda", "{region}", "function:{stack}-x")
    assert parse_arn("not-an-arn") is None


@pytest.mark.parametrize(
    ("text", "service", "kind", "name"),
    [
        ("arn:aws:lambda:us-east-1:000000000000:function:f", "lambda", "function", "f"),
        ("arn:aws:lambda:us-east-1:000000000000:function:f:live", "lambda", "function", "f"),
        ("arn:aws:iam::{account}:role/{stack}-rule-kinesis", "iam", "role", "{stack}-rule-kinesis"),
        ("arn:aws:iam::1:role/path/to/r", "iam", "role", "r"),
        ("arn:aws:iam::1:user/u", "iam", "role", None),
        ("arn:aws:s3:::bucket", "lambda", "function", None),
        ("f", "lambda", "function", None),
    ],
)
def test_arn_resource_name(text: str, service: str, kind: str, name: str | None) -> None:
    assert arn_resource_name(text, service, kind) == name


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("f", "f"),
        ("f:$LATEST", "f"),
        ("000000000000:function:f", "f"),
        ("arn:aws:lambda:us-east-1:000000000000:function:f:1", "f"),
        ("arn:aws:iam::000000000000:role/f", None),
        ("bad name", None),
    ],
)
def test_lambda_function_name_accepts_invokes_forms_only(text: str, name: str | None) -> None:
    assert lambda_function_name(text) == name
