"""A deploy check that needs no account: two stack names, two regions, and nothing that one
stack names can collide with, or reach into, the other.

Account-global names (IAM roles, CloudFront origin access controls and response headers
policies, S3 buckets) must differ between every pair of renders, even the same stack name in
two regions; and no resource pattern with a wildcard in one stack's policies may match a
resource of another stack (``table/chat-*`` of stack ``chat`` would match ``chat-dev``'s).
"""

from __future__ import annotations

import re
from functools import cache
from itertools import permutations, product
from typing import Any

from infra.aws.template import build_template
from tests.infra.aws.cfn_resolve import resolve, values

ACCOUNT = "123456789012"
STACKS = ("chat", "chat-dev")
REGIONS = ("us-east-1", "eu-west-1")

# Resource types whose names are unique per account (or per partition), not per region.
GLOBAL_NAMES = {
    "AWS::IAM::Role": "RoleName",
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::User": "UserName",
    "AWS::IAM::Group": "GroupName",
    "AWS::IAM::InstanceProfile": "InstanceProfileName",
    "AWS::S3::Bucket": "BucketName",
    "AWS::CloudFront::OriginAccessControl": "OriginAccessControlConfig.Name",
    "AWS::CloudFront::ResponseHeadersPolicy": "ResponseHeadersPolicyConfig.Name",
    "AWS::CloudFront::CachePolicy": "CachePolicyConfig.Name",
    "AWS::CloudFront::OriginRequestPolicy": "OriginRequestPolicyConfig.Name",
    "AWS::CloudFront::Function": "Name",
}
# A bare "*" some actions can only be granted on, each with the reason (iot:AttachPolicy to a
# Cognito identity names an identity id, not an ARN).
STAR_ONLY = {"iot:AttachPolicy"}


@cache
def rendered(stack: str, region: str) -> dict[str, Any]:
    return resolve(build_template(stack), values(stack, region, ACCOUNT))


def global_names(tpl: dict[str, Any]) -> list[tuple[str, str]]:
    names = []
    for res in tpl["Resources"].values():
        path = GLOBAL_NAMES.get(res["Type"])
        if path is None:
            continue
        value: Any = res["Properties"]
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if value is not None:  # None: CloudFormation generates a unique name
            assert isinstance(value, str), (res["Type"], value)
            names.append((res["Type"], value))
    return names


def test_no_account_global_name_repeats_across_stacks_and_regions() -> None:
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for stack, region in product(STACKS, REGIONS):
        for name in global_names(rendered(stack, region)):
            assert name not in seen, (name, seen.get(name), (stack, region))
            seen[name] = (stack, region)
    kinds = {kind for kind, _ in seen}
    # CloudFront needs names; IAM roles have none (CloudFormation generates them).
    assert kinds == {
        "AWS::CloudFront::OriginAccessControl",
        "AWS::CloudFront::ResponseHeadersPolicy",
    }
    for stack, region in product(STACKS, REGIONS):
        roles = [
            r
            for r in rendered(stack, region)["Resources"].values()
            if r["Type"] == "AWS::IAM::Role"
        ]
        assert roles and all("RoleName" not in r["Properties"] for r in roles)


def resource_arns(tpl: dict[str, Any], region: str) -> set[str]:
    """ARNs of the named resources a stack creates (and of a log stream in each log group)."""
    arn = f"arn:aws:{{}}:{region}:{ACCOUNT}:{{}}"
    out = set()
    for logical_id, res in tpl["Resources"].items():
        props, kind = res.get("Properties", {}), res["Type"]
        if kind == "AWS::DynamoDB::Table":
            out.add(arn.format("dynamodb", f"table/{props['TableName']}"))
            out.add(arn.format("dynamodb", f"table/{props['TableName']}/index/any"))
        elif kind == "AWS::Lambda::Function":
            out.add(arn.format("lambda", f"function:{props['FunctionName']}"))
        elif kind == "AWS::Kinesis::Stream":
            out.add(arn.format("kinesis", f"stream/{props['Name']}"))
        elif kind == "AWS::Logs::LogGroup":
            out.add(arn.format("logs", f"log-group:{props['LogGroupName']}:log-stream:any"))
        elif kind == "AWS::IoT::TopicRule":
            out.add(arn.format("iot", f"rule/{props['RuleName']}"))
        elif kind == "AWS::IoT::Policy":
            out.add(arn.format("iot", f"policy/{props['PolicyName']}"))
        elif kind == "AWS::SQS::Queue":
            out.add(arn.format("sqs", props["QueueName"]))
        elif kind == "AWS::IAM::Role":  # the name CloudFormation generates: stack-logicalid-x
            stack = tpl["Metadata"]["iotchat"]["stackName"]
            out.add(f"arn:aws:iam::{ACCOUNT}:role/{stack}-{logical_id}-ABCDEF123456")
    return out


def _statements(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, list):
        return [s for item in node for s in _statements(item)]
    if isinstance(node, dict):
        found = [node] if "Effect" in node else []
        return found + [s for value in node.values() for s in _statements(value)]
    return []


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []  # Ref / GetAtt: one exact resource of this stack


def wildcard_patterns(tpl: dict[str, Any]) -> set[str]:
    """Every resource pattern with ``*`` or ``?`` in the stack's policy statements (Resource,
    NotResource, ARN conditions) and Lambda permissions."""
    patterns: set[str] = set()
    for statement in _statements(tpl["Resources"]):
        actions = set(_strings(statement.get("Action", [])))
        for key in ("Resource", "NotResource"):
            for value in _strings(statement.get(key, [])):
                if value == "*" and actions <= STAR_ONLY:
                    continue
                patterns.add(value)
        for operator in statement.get("Condition", {}).values():
            for value in operator.values():
                patterns.update(v for v in _strings(value) if v.startswith("arn:"))
    for res in tpl["Resources"].values():
        if res["Type"] == "AWS::Lambda::Permission":
            patterns.update(_strings(res["Properties"].get("SourceArn")))
    return {p for p in patterns if "*" in p or "?" in p}


def matches(pattern: str, arn: str) -> bool:
    """IAM's ARN matching: ``*`` any run of characters (``/`` and ``:`` too), ``?`` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def overlaps(patterns: set[str], arns: set[str]) -> set[tuple[str, str]]:
    return {(p, a) for p in patterns for a in arns if matches(p, a)}


def test_no_wildcard_of_one_stack_matches_a_resource_of_another() -> None:
    for region in REGIONS:
        for mine, theirs in permutations(STACKS, 2):
            patterns = wildcard_patterns(rendered(mine, region))
            assert patterns, mine  # the topic patterns at least: the check sees the policies
            others = resource_arns(rendered(theirs, region), region)
            assert len(others) > 20
            assert not overlaps(patterns, others), (mine, theirs, region)


def test_the_check_catches_a_prefix_wildcard() -> None:
    """The patterns the template used to deploy, against chat-dev's resources."""
    region = REGIONS[0]
    theirs = resource_arns(rendered("chat-dev", region), region)
    for old in (
        f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/chat-*",
        f"arn:aws:logs:{region}:{ACCOUNT}:log-group:/aws/lambda/chat-*:*",
        f"arn:aws:iot:{region}:{ACCOUNT}:rule/chat_*",
    ):
        assert overlaps({old}, theirs), old
    # and an exact name of stack chat matches nothing of chat-dev
    assert not overlaps({f"arn:aws:dynamodb:{region}:{ACCOUNT}:table/chat-messages"}, theirs)
