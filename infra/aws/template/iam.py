"""The IoT policies and IAM roles, one per file in ``policies/iot`` and ``policies/iam``.

The documents are the local stack's, with ``Fn::Sub`` for the placeholders; only the trust
policies (who may assume each role) are AWS's own and live here.
"""

from __future__ import annotations

from typing import Any

from policies.documents import load_document, policy_names
from policies.render import render_cloudformation

from .base import (
    Template,
    TemplateError,
    logical_id,
    rule_name,
    service_trust,
    sub,
    trust_policy,
)

# IAM policy files that are not deployed as roles, and why.
NOT_DEPLOYED = {
    "local-admin": "the local stack's admin principal; AWS has its own",
    "rule-lambda": "on AWS a rule's Lambda action is authorised by the function's resource "
    "policy (AWS::Lambda::Permission), not by a role",
}


def add_iot_policies(t: Template) -> None:
    """One ``AWS::IoT::Policy`` per ``policies/iot`` file."""
    for name in policy_names("iot"):
        t.add(
            logical_id("iot", "policy", name),
            {
                "Type": "AWS::IoT::Policy",
                "Properties": {
                    "PolicyName": sub(f"{{stack}}-{name}"),
                    "PolicyDocument": render_cloudformation(load_document("iot", name)),
                },
            },
        )


def add_roles(t: Template) -> None:
    """One role per ``policies/iam`` file (but :data:`NOT_DEPLOYED`), with its trust policy."""
    for name in policy_names("iam"):
        if name in NOT_DEPLOYED:
            continue
        trust = _trust(t.stack, name)
        role_id = t.add(
            logical_id(name, "role") if not name.endswith("-role") else logical_id(name),
            {
                "Type": "AWS::IAM::Role",
                "Properties": {
                    "RoleName": sub(f"{{stack}}-{name}"),
                    "Description": f"iotchat: policies/iam/{name}.json",
                    "AssumeRolePolicyDocument": trust,
                    "Policies": [
                        {
                            "PolicyName": name,
                            "PolicyDocument": render_cloudformation(load_document("iam", name)),
                        }
                    ],
                },
            },
        )
        t.roles[f"{{stack}}-{name}"] = role_id


def _trust(stack: str, name: str) -> dict[str, Any]:
    if name in ("guest-role", "user-role"):
        amr = "authenticated" if name == "user-role" else "unauthenticated"
        return trust_policy(
            {"Federated": "cognito-identity.amazonaws.com"},
            "sts:AssumeRoleWithWebIdentity",
            {
                "StringEquals": {"cognito-identity.amazonaws.com:aud": {"Ref": "IdentityPool"}},
                "ForAnyValue:StringLike": {"cognito-identity.amazonaws.com:amr": amr},
            },
        )
    if name == "backend-lambda":
        return service_trust("lambda.amazonaws.com")
    if name.startswith("rule-"):
        source_arn = {
            "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:rule/"
            + rule_name(stack, "*")
        }
        return service_trust(
            "iot.amazonaws.com",
            {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnLike": {"aws:SourceArn": source_arn},
            },
        )
    raise TemplateError(
        f"policies/iam/{name}.json: no trust policy is defined for it in infra/aws/template/iam.py "
        "(who may assume the role?)"
    )
