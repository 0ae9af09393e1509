"""The CloudFormation template deploys exactly what ``iotchat up`` runs, under per-stack names."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pytest

from infra.aws.template import (
    NOT_DEPLOYED,
    TemplateError,
    build_template,
    check_stack_name,
    rule_name,
    web_csp,
)
from iot_rules.loader import load_rules
from lambdas.manifest import Manifest
from policies.documents import load_document, policy_names
from policies.render import render
from tests.infra.aws.cfn_resolve import camel_keys, resolve, values

REGION, ACCOUNT = "eu-west-1", "123456789012"


@cache
def template(stack: str = "chat-a") -> dict[str, Any]:
    return build_template(stack)


def resolved(stack: str = "chat-a") -> dict[str, Any]:
    return resolve(template(stack), values(stack, REGION, ACCOUNT))


def of_type(tpl: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: res for name, res in tpl["Resources"].items() if res["Type"] == kind}


def local(stack: str) -> dict[str, str]:
    return {"region": REGION, "account": ACCOUNT, "stack": stack}


def role_files(tpl: dict[str, Any]) -> dict[str, str]:
    """Role logical id -> the policies/iam file it is built from (its Description says)."""
    prefix = "iotchat: policies/iam/"
    return {
        role_id: res["Properties"]["Description"].removeprefix(prefix).removesuffix(".json")
        for role_id, res in of_type(tpl, "AWS::IAM::Role").items()
        if res["Properties"]["Description"].startswith(prefix)
    }


def local_role_arns(node: Any, stack: str, roles: dict[str, str]) -> Any:
    """``Fn::GetAtt`` of a role's Arn -> the ARN the local stack gives the same role."""
    if isinstance(node, list):
        return [local_role_arns(item, stack, roles) for item in node]
    if isinstance(node, dict):
        target = node.get("Fn::GetAtt")
        if set(node) == {"Fn::GetAtt"} and target[0] in roles and target[1] == "Arn":
            return f"arn:aws:iam::{ACCOUNT}:role/{stack}-{roles[target[0]]}"
        return {key: local_role_arns(value, stack, roles) for key, value in node.items()}
    return node


# ------------------------------------------------------------------ same as the local stack


@pytest.mark.parametrize("stack", ["chat-a", "iotchat"])
def test_topic_rules_are_the_local_rules(stack: str) -> None:
    rules = {rule_name(stack, r.name): r.payload for r in load_rules(names=local(stack))}
    tpl = resolved(stack)
    roles = role_files(tpl)
    deployed = {
        res["Properties"]["RuleName"]: camel_keys(
            local_role_arns(res["Properties"]["TopicRulePayload"], stack, roles)
        )
        for res in of_type(tpl, "AWS::IoT::TopicRule").values()
    }
    assert set(deployed) == set(rules)
    for name, payload in rules.items():
        # SQL, SQL version, actions (topics, roles, tables, functions, streams), error action.
        assert deployed[name] == payload, name


def test_iot_policies_are_the_local_documents() -> None:
    policies = {
        res["Properties"]["PolicyName"]: res["Properties"]["PolicyDocument"]
        for res in of_type(resolved(), "AWS::IoT::Policy").values()
    }
    expected = {
        f"chat-a-{name}": render(load_document("iot", name), **local("chat-a"))
        for name in policy_names("iot")
    }
    assert policies == expected
    # Policy variables reach IoT untouched.
    assert "${cognito-identity.amazonaws.com:sub}" in str(policies["chat-a-user"])
    assert "${iot:Connection.Thing.ThingName}" in str(policies["chat-a-device"])


def test_iam_roles_carry_the_local_documents() -> None:
    tpl = resolved()
    roles = {
        name: tpl["Resources"][role_id]["Properties"] for role_id, name in role_files(tpl).items()
    }
    for name in policy_names("iam"):
        if name in NOT_DEPLOYED:
            assert name not in roles
            continue
        attached = {p["PolicyName"]: p["PolicyDocument"] for p in roles[name]["Policies"]}
        deployed = attached[name]["Statement"]
        wanted = render(load_document("iam", name), **local("chat-a"))["Statement"]
        assert len(deployed) == len(wanted), name
        for mine, theirs in zip(deployed, wanted, strict=True):
            resources = _listed(theirs.get("Resource"))
            assert {**mine, "Resource": None} == {**theirs, "Resource": None}, name
            if not any("chat-a-*" in r for r in resources):
                assert _listed(mine.get("Resource")) == resources, name
                continue
            # `<stack>-*` becomes the stack's own resources by name: no more than the local
            # pattern grants, and every resource of this stack it grants.
            granted = _listed(mine["Resource"])
            assert all(any(matches(p, r) for p in resources) for r in granted), name
            for arn in stack_arns("chat-a"):
                if any(matches(p, arn) for p in resources):
                    assert any(matches(g, arn) for g in granted), (name, arn)


def _listed(resource: Any) -> list[str]:
    return [resource] if isinstance(resource, str) else list(resource or [])


def matches(pattern: str, arn: str) -> bool:
    """IAM's ARN matching: ``*`` any run of characters, ``?`` one."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, arn) is not None


def stack_arns(stack: str) -> list[str]:
    """The ARNs of the manifest's tables (and an index), streams and functions' log streams."""
    manifest = Manifest.load(region=REGION, account=ACCOUNT, stack=stack)
    prefix = f"arn:aws:{{}}:{REGION}:{ACCOUNT}:"
    arns = []
    for table in manifest.table_names:
        arns += [
            prefix.format("dynamodb") + f"table/{table}",
            prefix.format("dynamodb") + f"table/{table}/index/i",
        ]
    arns += [prefix.format("kinesis") + f"stream/{name}" for name in manifest.stream_names]
    arns += [
        prefix.format("logs") + f"log-group:/aws/lambda/{spec.name}:log-stream:s"
        for spec in manifest
    ]
    return arns


def test_functions_tables_and_mappings_are_the_manifest() -> None:
    tpl = resolved()
    manifest = Manifest.load(region=REGION, account=ACCOUNT, stack="chat-a")
    functions = {
        res["Properties"]["FunctionName"]: res["Properties"]
        for res in of_type(tpl, "AWS::Lambda::Function").values()
    }
    for spec in manifest:
        props = functions[spec.name]
        assert props["Handler"] == spec.handler
        assert props["Timeout"] == spec.timeout
        assert props["MemorySize"] == spec.memory_size
        # Nothing is reserved unless deploy is asked to (test_concurrency.py).
        assert "ReservedConcurrentExecutions" not in props
        env = dict(props["Environment"]["Variables"])
        assert env.pop("IOT_DATA_ENDPOINT") == {"Ref": "IotDataEndpoint"}
        if spec.handler == "lambdas.handlers.commands":
            # It checks sign-in tokens with the identity pool (lambdas/chat/people.py).
            assert env.pop("IDENTITY_POOL_ID") == {"Ref": "IdentityPool"}
            assert env.pop("USER_POOL_PROVIDER") == {"Fn::GetAtt": ["UserPool", "ProviderName"]}
        assert env == dict(spec.environment)
    tables = {
        res["Properties"]["TableName"]: res["Properties"]
        for res in of_type(tpl, "AWS::DynamoDB::Table").values()
    }
    assert set(tables) == set(manifest.table_names)
    for request in manifest.tables:
        props = tables[request["TableName"]]
        assert props["KeySchema"] == request["KeySchema"]
        assert props["AttributeDefinitions"] == request["AttributeDefinitions"]
        assert props.get("LocalSecondaryIndexes") == request.get("LocalSecondaryIndexes")
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
        assert props["SSESpecification"] == {"SSEEnabled": True}
    assert tables["chat-a-messages"]["TimeToLiveSpecification"] == {
        "AttributeName": "expiresAt",
        "Enabled": True,
    }
    streams = of_type(tpl, "AWS::Kinesis::Stream")
    assert {s["Properties"]["Name"] for s in streams.values()} == set(manifest.stream_names)
    mappings = of_type(tpl, "AWS::Lambda::EventSourceMapping")
    assert len(mappings) == len(manifest.event_source_mappings)
    for mapping, source in zip(mappings.values(), manifest.event_source_mappings, strict=True):
        props = mapping["Properties"]
        assert props["StartingPosition"] == source.starting_position
        assert props["BatchSize"] == source.batch_size
        assert props["MaximumRetryAttempts"] == source.maximum_retry_attempts


def test_the_store_rule_writes_the_ttl_attribute() -> None:
    store = next(r for r in load_rules(names=local("chat-a")) if r.name == "chat_room_store")
    assert "AS expiresAt" in store.sql


# ------------------------------------------------------------------ AWS-only wiring


def test_every_rule_may_invoke_the_functions_it_names() -> None:
    tpl = template()
    permissions = of_type(tpl, "AWS::Lambda::Permission").values()
    granted = {
        (p["Properties"]["SourceArn"]["Fn::GetAtt"][0], p["Properties"]["FunctionName"]["Ref"])
        for p in permissions
        if p["Properties"]["Principal"] == "iot.amazonaws.com"
    }
    needed = set()
    for rule_id, rule in of_type(tpl, "AWS::IoT::TopicRule").items():
        payload = rule["Properties"]["TopicRulePayload"]
        for action in [*payload["Actions"], payload["ErrorAction"]]:
            if "Lambda" in action:
                arn = action["Lambda"]["FunctionArn"]["Fn::Sub"]
                short = arn.rpartition("${AWS::StackName}-")[2]
                function = next(
                    name
                    for name, res in of_type(tpl, "AWS::Lambda::Function").items()
                    if res["Properties"]["FunctionName"]["Fn::Sub"].endswith("}-" + short)
                )
                needed.add((rule_id, function))
    assert needed and granted == needed


def test_rule_roles_are_trusted_by_iot_only_for_the_rules_that_use_them() -> None:
    tpl = resolved()
    roles = of_type(tpl, "AWS::IAM::Role")
    users: dict[str, set[str]] = {}
    for rule in of_type(tpl, "AWS::IoT::TopicRule").values():
        payload = rule["Properties"]["TopicRulePayload"]
        for action in [*payload["Actions"], payload["ErrorAction"]]:
            for params in action.values():
                if "RoleArn" in params:
                    role_id = params["RoleArn"]["Fn::GetAtt"][0]
                    users.setdefault(role_id, set()).add(rule["Properties"]["RuleName"])
    assert set(users) == {"RuleRepublishRole", "RuleDynamodbRole", "RuleKinesisRole"}
    for role_id, rules in users.items():
        (statement,) = roles[role_id]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert statement["Principal"] == {"Service": "iot.amazonaws.com"}
        trusted = statement["Condition"]["ArnEquals"]["aws:SourceArn"]
        # exact ARNs, no prefix that another stack's rules (chat_a_b_...) could match
        assert trusted == [f"arn:aws:iot:{REGION}:{ACCOUNT}:rule/{name}" for name in sorted(rules)]
        assert "ArnLike" not in statement["Condition"]


def test_identity_pool_roles_are_bound_to_this_pool() -> None:
    tpl = template()
    attachment = of_type(tpl, "AWS::Cognito::IdentityPoolRoleAttachment")["IdentityPoolRoles"]
    roles = attachment["Properties"]["Roles"]
    assert roles["authenticated"]["Fn::GetAtt"][0] == "UserRole"
    assert roles["unauthenticated"]["Fn::GetAtt"][0] == "GuestRole"
    for role, amr in (("UserRole", "authenticated"), ("GuestRole", "unauthenticated")):
        (trust,) = tpl["Resources"][role]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        assert trust["Condition"]["StringEquals"]["cognito-identity.amazonaws.com:aud"] == {
            "Ref": "IdentityPool"
        }
        assert trust["Condition"]["ForAnyValue:StringLike"] == {
            "cognito-identity.amazonaws.com:amr": amr
        }
    # Only a signed-in identity may call the sign-in step.
    user_extra = [
        p
        for p in tpl["Resources"]["UserRole"]["Properties"]["Policies"]
        if p["PolicyName"] == "aws-sign-in"
    ]
    assert user_extra and "aws-sign-in" not in str(tpl["Resources"]["GuestRole"])
    pool = tpl["Resources"]["UserPool"]["Properties"]
    assert pool["AutoVerifiedAttributes"] == ["email"]
    client = tpl["Resources"]["UserPoolClient"]["Properties"]
    assert set(client["ExplicitAuthFlows"]) == {
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    }
    assert client["GenerateSecret"] is False


def test_stream_path_exists_only_when_enabled() -> None:
    tpl = template()
    assert tpl["Parameters"]["EnableStream"]["Default"] == "false"
    conditional = {
        name for name, res in tpl["Resources"].items() if res.get("Condition") == "StreamEnabled"
    }
    assert set(of_type(tpl, "AWS::Kinesis::Stream")) <= conditional
    assert set(of_type(tpl, "AWS::Lambda::EventSourceMapping")) <= conditional
    assert "RuleChatStream" in conditional
    # The refusal of invalid stream events stays, so nobody is answered with silence.
    assert "RuleChatStreamInvalid" not in conditional
    for name, res in tpl["Resources"].items():
        if name not in conditional:
            assert not (set(res.get("DependsOn", [])) & conditional), name


def test_web_bucket_is_private_and_served_over_https_only() -> None:
    tpl = template()
    bucket = tpl["Resources"]["WebBucket"]["Properties"]
    assert all(bucket["PublicAccessBlockConfiguration"].values())
    assert "WebsiteConfiguration" not in bucket
    statements = tpl["Resources"]["WebBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allows = [s for s in statements if s["Effect"] == "Allow"]
    assert [s["Principal"] for s in allows] == [{"Service": "cloudfront.amazonaws.com"}]
    assert "AWS:SourceArn" in allows[0]["Condition"]["StringEquals"]
    assert any(s["Effect"] == "Deny" and "aws:SecureTransport" in str(s) for s in statements)
    config = tpl["Resources"]["WebDistribution"]["Properties"]["DistributionConfig"]
    behaviours = [config["DefaultCacheBehavior"], *config["CacheBehaviors"]]
    assert {b["ViewerProtocolPolicy"] for b in behaviours} == {"redirect-to-https"}
    assert config["Origins"][0]["OriginAccessControlId"] == {
        "Fn::GetAtt": ["WebOriginAccess", "Id"]
    }
    oac = tpl["Resources"]["WebOriginAccess"]["Properties"]["OriginAccessControlConfig"]
    assert oac["SigningBehavior"] == "always"


def test_csp_is_the_local_servers_plus_the_sign_in_endpoint() -> None:
    policy = web_csp()
    assert "script-src 'self'" in policy and "'unsafe" not in policy
    assert "wss://${IotDataEndpoint}" in policy
    assert "https://lambda.${AWS::Region}.amazonaws.com" in policy
    assert "https://cognito-idp.${AWS::Region}.amazonaws.com" in policy


# ------------------------------------------------------------------ names


NAME_PROPERTIES = {
    "AWS::IoT::Policy": "PolicyName",
    "AWS::IoT::TopicRule": "RuleName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Kinesis::Stream": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Cognito::UserPool": "UserPoolName",
    "AWS::CloudFront::OriginAccessControl": "OriginAccessControlConfig.Name",
    "AWS::CloudFront::ResponseHeadersPolicy": "ResponseHeadersPolicyConfig.Name",
}


def physical_names(stack: str) -> set[tuple[str, str]]:
    names = set()
    for res in resolved(stack)["Resources"].values():
        path = NAME_PROPERTIES.get(res["Type"])
        if path is None:
            continue
        value: Any = res["Properties"]
        for part in path.split("."):
            value = value.get(part)
        if value is None and res["Type"] == "AWS::IAM::Role":
            continue  # CloudFormation generates role names (they are account-global)
        assert isinstance(value, str), (res["Type"], value)
        assert stack in value or stack.replace("-", "_") in value, value
        names.add((res["Type"], value))
    return names


def test_two_stacks_share_no_physical_name() -> None:
    a, b = physical_names("chat-a"), physical_names("chat-b")
    assert len(a) == len(b) > 25
    assert not a & b
    # Within one stack, no two resources of a type share a name either.
    tpl = resolved("chat-a")
    per_type = [
        (res["Type"], str(res["Properties"].get(NAME_PROPERTIES[res["Type"]].split(".")[0])))
        for res in tpl["Resources"].values()
        if res["Type"] in NAME_PROPERTIES and res["Type"] != "AWS::IAM::Role"
    ]
    assert len(per_type) == len(set(per_type))


def test_every_named_resource_type_is_checked_for_collisions() -> None:
    """A new resource type with a fixed name must join NAME_PROPERTIES (or be unnamed)."""
    named = {"Name", "RoleName", "FunctionName", "TableName", "PolicyName", "RuleName"}
    for res in template()["Resources"].values():
        props = res.get("Properties", {})
        given = [k for k in named & set(props) if "Ref" not in props[k]]
        if given and res["Type"] not in NAME_PROPERTIES:
            raise AssertionError(f"{res['Type']} sets a name that no test checks")


@pytest.mark.parametrize("bad", ["", "Chat", "chat_a", "-chat", "chat-", "a" * 25, "9chat"])
def test_stack_names_that_would_break_a_physical_name_are_refused(bad: str) -> None:
    with pytest.raises(TemplateError):
        check_stack_name(bad)


def test_every_suppression_has_a_reason() -> None:
    for name, res in template()["Resources"].items():
        metadata = res.get("Metadata", {})
        for skip in metadata.get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "").strip()) >= 30, (name, skip)
        ignored = metadata.get("cfn-lint", {}).get("config", {}).get("ignore_checks", [])
        assert not ignored, f"{name}: cfn-lint ignores need a reason in the template"
