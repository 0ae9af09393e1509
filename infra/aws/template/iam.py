"""The IoT policies and IAM roles, one per file in ``policies/iot`` and ``policies/iam``.

The documents are the local stack's, with ``Fn::Sub`` for the placeholders; only the trust
policies (who may assume each role) are AWS's own and live here.
"""

from __future__ import annotations

import json
from typing import Any

from iot_rules.loader import RuleDefinition
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
        trust = _trust(t, name)
        role_id = t.add(
            logical_id(name, "role") if not name.endswith("-role") else logical_id(name),
            {
                "Type": "AWS::IAM::Role",
                # No RoleName: role names are unique per account, not per region, so a fixed
                # name fails the same stack name in a second region; CloudFormation generates
                # one ("If you don't specify a name, AWS CloudFormation generates a unique
                # physical ID", https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/
                # aws-resource-iam-role.html). Rules take the ARN by GetAtt (rules.py).
                "Properties": {
                    "Description": f"iotchat: policies/iam/{name}.json",
                    "AssumeRolePolicyDocument": trust,
                    "Policies": [
                        {
                            "PolicyName": name,
                            "PolicyDocument": render_cloudformation(
                                exact_resources(t, load_document("iam", name))
                            ),
                        }
                    ],
                },
            },
        )
        t.roles[f"{{stack}}-{name}"] = role_id


# A policy resource ``...{stack}-*...`` of these kinds names the stack's own resources of that
# kind: (what precedes the pattern in the ARN, the manifest section, the name field).
_STACK_PATTERNS = (
    (":table/", "tables", "TableName"),
    (":stream/", "streams", "StreamName"),
    (":log-group:/aws/lambda/", "functions", "name"),
    (":function:", "functions", "name"),
)


def exact_resources(t: Template, document: dict[str, Any]) -> dict[str, Any]:
    """The policy with each ``{stack}-*`` resource replaced by the ARNs of the stack's declared
    resources it covers: locally one stack runs and the prefix is exact enough, but in an
    account ``table/chat-*`` of stack ``chat`` also matches stack ``chat-dev``'s tables."""
    manifest = json.loads(t.manifest_path.read_text(encoding="utf-8"))

    def expand(resource: str) -> list[str]:
        if "{stack}-*" not in resource:
            return [resource]
        for prefix, section, field in _STACK_PATTERNS:
            if prefix + "{stack}-*" in resource:
                names = [entry[field] for entry in manifest.get(section, [])]
                return [resource.replace("{stack}-*", name, 1) for name in names]
        raise TemplateError(f"policy resource {resource!r}: the template cannot name it exactly")

    statements = []
    for statement in document["Statement"]:
        resources = statement.get("Resource")
        if resources is not None:
            listed = [resources] if isinstance(resources, str) else resources
            statement = {**statement, "Resource": [r for x in listed for r in expand(x)]}
        statements.append(statement)
    return {**document, "Statement": statements}


def rules_using_role(t: Template, role: str) -> list[str]:
    """The stems of the rule files whose actions or errorAction assume ``{stack}-<role>``."""
    stems = []
    for path in sorted(t.rules_dir.glob("*.json")):
        raw = json.loads(path.read_text(encoding="utf-8"))
        definition = RuleDefinition(path.stem, raw)
        if any(r.kind == "role" and r.name == f"{{stack}}-{role}" for r in definition.references()):
            stems.append(path.stem)
    return stems


def _trust(t: Template, name: str) -> dict[str, Any]:
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
        # The exact ARNs of the rules that use the role: a prefix (rule/chat_*) would also
        # trust the rules of a stack whose name extends this one's (chat-dev: chat_dev_*).
        source_arns = [
            {
                "Fn::Sub": "arn:${AWS::Partition}:iot:${AWS::Region}:${AWS::AccountId}:rule/"
                + rule_name(t.stack, stem)
            }
            for stem in rules_using_role(t, name)
        ]
        if not source_arns:
            raise TemplateError(f"policies/iam/{name}.json: no rule uses this role")
        return service_trust(
            "iot.amazonaws.com",
            {
                "StringEquals": {"aws:SourceAccount": {"Ref": "AWS::AccountId"}},
                "ArnEquals": {"aws:SourceArn": source_arns},
            },
        )
    raise TemplateError(
        f"policies/iam/{name}.json: no trust policy is defined for it in infra/aws/template/iam.py "
        "(who may assume the role?)"
    )
