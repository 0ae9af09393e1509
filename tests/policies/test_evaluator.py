"""Statement semantics: effects, wildcards, NotAction/NotResource, variables."""

from __future__ import annotations

import pytest

from policies.evaluator import Decision, Policy, PolicyError, Request, evaluate_all
from tests.policies.helpers import client, decide, policy, stmt, tfilter, topic

ALLOW, DENY, IMPLICIT = Decision.ALLOW, Decision.DENY_EXPLICIT, Decision.DENY_IMPLICIT


def test_allow_grants_only_what_it_names():
    p = policy(stmt(resource=topic("chat/out")))
    assert decide(p, "iot:Publish", topic("chat/out")) is ALLOW
    assert decide(p, "iot:Publish", topic("chat/outx")) is IMPLICIT
    assert decide(p, "iot:Subscribe", topic("chat/out")) is IMPLICIT


def test_default_deny_with_no_policies_or_no_match():
    assert decide([], "iot:Connect", client("a")) is IMPLICIT
    assert (
        decide(policy(stmt(action="iot:Connect", resource=client("b"))), "iot:Connect", client("a"))
        is IMPLICIT
    )


def test_explicit_deny_beats_allow_in_same_and_other_policy():
    allow_all = policy(stmt(action="iot:*", resource="*"))
    deny = policy(stmt("Deny", resource=topic("chat/in/*")))
    assert decide(allow_all, "iot:Publish", topic("chat/in/x")) is ALLOW
    assert decide([allow_all, deny], "iot:Publish", topic("chat/in/x")) is DENY
    assert decide([deny, allow_all], "iot:Publish", topic("chat/in/x")) is DENY
    both = policy(stmt(action="iot:*"), stmt("Deny", resource=topic("chat/in/*")))
    assert decide(both, "iot:Publish", topic("chat/in/x")) is DENY
    assert decide(both, "iot:Publish", topic("chat/out")) is ALLOW


def test_deny_alone_is_explicit_even_without_allow():
    assert decide(policy(stmt("Deny")), "iot:Publish", topic("x")) is DENY


@pytest.mark.parametrize("action", ["iot:Publish", "IOT:PUBLISH", "iot:publish"])
def test_actions_match_case_insensitively(action):
    assert decide(policy(stmt(action=action)), "iot:Publish", topic("t")) is ALLOW
    assert decide(policy(stmt(action="iot:Publish")), action, topic("t")) is ALLOW


def test_action_wildcards():
    assert decide(policy(stmt(action="iot:*")), "iot:Receive", topic("t")) is ALLOW
    assert decide(policy(stmt(action="*")), "dynamodb:PutItem", "arn:x") is ALLOW
    assert decide(policy(stmt(action="iot:*Publish")), "iot:RetainPublish", topic("t")) is ALLOW
    assert decide(policy(stmt(action="iot:*Publish")), "iot:Receive", topic("t")) is IMPLICIT
    assert decide(policy(stmt(action="iot:?onnect")), "iot:Connect", client("c")) is ALLOW
    assert decide(policy(stmt(action="iot:*")), "iotx:Publish", topic("t")) is IMPLICIT


def test_action_list_is_any_of():
    p = policy(stmt(action=["iot:Publish", "iot:Receive"]))
    assert decide(p, "iot:Receive", topic("t")) is ALLOW
    assert decide(p, "iot:Subscribe", tfilter("t")) is IMPLICIT


# Resource patterns for iot:Publish: pattern -> topic -> decision. '*' crosses '/', '?' is one
# character ('/' included), MQTT's '+' and '#' and regex metacharacters are literal, and
# resources are case-sensitive.
TOPIC_PATTERNS = {
    "chat/*": {"chat/a/b/c": ALLOW, "chat/": ALLOW, "chats/a": IMPLICIT},
    "a?b": {"a/b": ALLOW, "axb": ALLOW, "ab": IMPLICIT, "axxb": IMPLICIT},
    "a.b[c]": {"a.b[c]": ALLOW, "aXb[c]": IMPLICIT},
    "Chat": {"chat": IMPLICIT},
}


@pytest.mark.parametrize("pattern", TOPIC_PATTERNS)
def test_resource_wildcards_and_literals(pattern):
    p = policy(stmt(resource=topic(pattern)))
    decisions = {name: decide(p, "iot:Publish", topic(name)) for name in TOPIC_PATTERNS[pattern]}
    assert decisions == TOPIC_PATTERNS[pattern]


def test_plus_and_hash_are_literal():
    plus = policy(stmt(action="iot:Subscribe", resource=tfilter("chat/+")))
    assert decide(plus, "iot:Subscribe", tfilter("chat/+")) is ALLOW
    assert decide(plus, "iot:Subscribe", tfilter("chat/x")) is IMPLICIT
    hash_ = policy(stmt(action="iot:Subscribe", resource=tfilter("chat/#")))
    assert decide(hash_, "iot:Subscribe", tfilter("chat/#")) is ALLOW
    assert decide(hash_, "iot:Subscribe", tfilter("chat/a/b")) is IMPLICIT


def test_not_action_applies_to_every_other_action():
    p = policy({"Effect": "Allow", "NotAction": "iot:Publish", "Resource": "*"})
    assert decide(p, "iot:Receive", topic("t")) is ALLOW
    assert decide(p, "iot:Publish", topic("t")) is IMPLICIT
    deny = policy(
        stmt(action="iot:*"), {"Effect": "Deny", "NotAction": "iot:Receive", "Resource": "*"}
    )
    assert decide(deny, "iot:Receive", topic("t")) is ALLOW
    assert decide(deny, "iot:Publish", topic("t")) is DENY


def test_not_resource_applies_to_every_other_resource():
    p = policy({"Effect": "Allow", "Action": "iot:Publish", "NotResource": topic("chat/in/*")})
    assert decide(p, "iot:Publish", topic("chat/out")) is ALLOW
    assert decide(p, "iot:Publish", topic("chat/in/a")) is IMPLICIT
    d = policy(
        stmt(),
        {
            "Effect": "Deny",
            "Action": "iot:Publish",
            "NotResource": [topic("chat/out"), topic("chat/stream")],
        },
    )
    assert decide(d, "iot:Publish", topic("chat/stream")) is ALLOW
    assert decide(d, "iot:Publish", topic("$aws/things/x")) is DENY


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("iot:ClientId", "c-1"),
        ("iot:Connection.Thing.ThingName", "pi-kitchen"),
        ("iot:Connection.Thing.IsAttached", "true"),
        ("cognito-identity.amazonaws.com:sub", "us-east-1:7f3c0e2a-1111-2222-3333-444455556666"),
        ("aws:SourceIp", "127.0.0.1"),
    ],
)
def test_each_variable_is_substituted_in_resources(variable, value):
    p = policy(stmt(resource=topic("x/${" + variable + "}")))
    assert decide(p, "iot:Publish", topic(f"x/{value}"), **{variable: value}) is ALLOW
    assert decide(p, "iot:Publish", topic("x/other"), **{variable: value}) is IMPLICIT


def test_missing_variable_means_no_match_not_empty_string():
    p = policy(stmt(resource=[topic("x/${iot:ClientId}"), topic("y")]))
    assert decide(p, "iot:Publish", topic("x/")) is IMPLICIT
    assert decide(p, "iot:Publish", topic("y")) is ALLOW  # other entries still count
    deny = policy(stmt(), stmt("Deny", resource=topic("x/${iot:ClientId}")))
    assert decide(deny, "iot:Publish", topic("x/")) is ALLOW


def test_variable_default_value_is_used_when_missing():
    p = policy(stmt(resource=topic("x/${iot:ClientId, 'nobody'}")))
    assert decide(p, "iot:Publish", topic("x/nobody")) is ALLOW
    assert decide(p, "iot:Publish", topic("x/a"), **{"iot:ClientId": "a"}) is ALLOW


def test_substituted_values_are_literal_not_wildcards():
    p = policy(stmt(resource=topic("chat/in/${iot:ClientId}")))
    assert decide(p, "iot:Publish", topic("chat/in/victim"), **{"iot:ClientId": "*"}) is IMPLICIT
    assert decide(p, "iot:Publish", topic("chat/in/*"), **{"iot:ClientId": "*"}) is ALLOW


def test_client_id_plus_matches_the_literal_plus_filter():
    """The reference's warning: ${iot:ClientId} = '+' grants the filter chat/in/+."""
    p = policy(stmt(action="iot:Subscribe", resource=tfilter("chat/in/${iot:ClientId}")))
    assert decide(p, "iot:Subscribe", tfilter("chat/in/+"), **{"iot:ClientId": "+"}) is ALLOW


def test_special_character_variables():
    p = policy(stmt(resource=topic("a${*}b${?}c${$}")))
    assert decide(p, "iot:Publish", topic("a*b?c$")) is ALLOW
    assert decide(p, "iot:Publish", topic("aXbYc$")) is IMPLICIT


def test_version_2008_treats_variables_literally():
    p = Policy.parse(
        "old", {"Version": "2008-10-17", "Statement": [stmt(resource=topic("x/${iot:ClientId}"))]}
    )
    assert decide(p, "iot:Publish", topic("x/a"), **{"iot:ClientId": "a"}) is IMPLICIT
    assert decide(p, "iot:Publish", topic("x/${iot:ClientId}")) is ALLOW


def test_evaluate_all_needs_every_set_to_allow():
    role = [policy(stmt(resource=topic("chat/*")))]
    iot = [policy(stmt(resource=topic("chat/out")))]
    request = Request("iot:Publish", topic("chat/out"))
    assert evaluate_all([role, iot], request) is ALLOW
    assert evaluate_all([role, iot], Request("iot:Publish", topic("chat/stream"))) is IMPLICIT
    assert evaluate_all([role, []], request) is IMPLICIT  # signed in, no IoT policy attached
    assert evaluate_all([], request) is IMPLICIT
    deny = [policy(stmt("Deny", resource=topic("chat/out")))]
    assert evaluate_all([role, deny], request) is DENY


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        ("not json", "not JSON"),
        ([], "JSON object"),
        ({"Statement": []}, "non-empty"),
        ({"Version": "2020-01-01", "Statement": [stmt()]}, "Version"),
        ({"Statement": [{"Action": "iot:*", "Resource": "*"}]}, "Effect"),
        ({"Statement": [{"Effect": "Permit", "Action": "iot:*", "Resource": "*"}]}, "Effect"),
        ({"Statement": [{"Effect": "Allow", "Resource": "*"}]}, "Action"),
        ({"Statement": [stmt(NotAction="iot:Connect")]}, "Action"),
        ({"Statement": [{"Effect": "Allow", "Action": "iot:*"}]}, "Resource"),
        ({"Statement": [stmt(NotResource="*")]}, "Resource"),
        ({"Statement": [stmt(action="Publish")]}, "malformed action"),
        ({"Statement": [stmt(action=[])]}, "non-empty"),
        ({"Statement": [stmt(Principal="*")]}, "Principal"),
        ({"Statement": [stmt(Condition={"StringSorta": {"a": "b"}})]}, "StringSorta"),
        ({"Statement": [stmt(Condition={"IpAddress": {"aws:SourceIp": "1.2.3"}})]}, "IpAddress"),
        ({"Statement": [stmt(Condition={"Bool": {"k": "yes"}})]}, "true or false"),
        ({"Statement": [stmt(Condition={"NumericLessThan": {"k": "x"}})]}, "number"),
        ({"Statement": [stmt(Condition={"NullIfExists": {"k": "true"}})]}, "NullIfExists"),
        ({"Statement": [stmt(resource="topic/${iot:ClientId")]}, None),
        ({"Statement": [stmt(resource="topic/${bad key}")]}, "malformed policy variable"),
        ({"Statement": [stmt()], "Extra": 1}, "Extra"),
    ],
)
def test_parser_refuses_what_aws_refuses(document, problem):
    if isinstance(document, dict) and "Version" not in document:
        document = {"Version": "2012-10-17", **document}
    if problem is None:  # an unterminated ${ is plain text, like AWS: parse succeeds
        Policy.parse("p", document)
        return
    with pytest.raises(PolicyError) as info:
        Policy.parse("the-policy", document)
    assert problem in str(info.value)
    if isinstance(document, dict):
        assert "the-policy" in str(info.value)


def test_parse_accepts_json_text_and_single_statement_object():
    p = Policy.parse(
        "t",
        '{"Version": "2012-10-17", "Statement": '
        '{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}}',
    )
    assert p.name == "t"
    assert decide(p, "iot:Connect", client("a")) is ALLOW
