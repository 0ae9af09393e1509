"""Condition operators: each one, negation, missing keys, IfExists, set qualifiers."""

from __future__ import annotations

import pytest

from policies.evaluator import Decision
from tests.policies.helpers import decide, policy, stmt, topic

T = topic("t")


def allowed(condition: dict, **context: str) -> bool:
    p = policy(stmt(resource=T, Condition=condition))
    return decide(p, "iot:Publish", T, **context) is Decision.ALLOW


@pytest.mark.parametrize(
    ("operator", "policy_value", "yes", "no"),
    [
        ("StringEquals", "abc", "abc", "ABC"),
        ("StringNotEquals", "abc", "abd", "abc"),
        ("StringEqualsIgnoreCase", "abc", "ABC", "abd"),
        ("StringNotEqualsIgnoreCase", "abc", "abd", "ABC"),
        ("StringLike", "a*/?", "ab/c/d", "ab/cd"),
        ("StringNotLike", "a*", "ba", "ab"),
        (
            "ArnEquals",
            "arn:aws:iot:*:*:topic/x",
            "arn:aws:iot:eu-west-1:1:topic/x",
            "arn:aws:iot:eu-west-1:1:topic/y",
        ),
        (
            "ArnLike",
            "arn:aws:iot:us-*:*:client/*",
            "arn:aws:iot:us-east-1:1:client/c",
            "arn:aws:iot:eu-west-1:1:client/c",
        ),
        (
            "ArnNotEquals",
            "arn:aws:iot:*:*:topic/x",
            "arn:aws:iot:r:1:topic/y",
            "arn:aws:iot:r:1:topic/x",
        ),
        (
            "ArnNotLike",
            "arn:aws:iot:*:*:topic/*",
            "arn:aws:iot:r:1:client/c",
            "arn:aws:iot:r:1:topic/t",
        ),
        ("Bool", "true", "True", "false"),
        ("IpAddress", "10.0.0.0/8", "10.1.2.3", "11.0.0.1"),
        ("NotIpAddress", "10.0.0.0/8", "192.168.0.1", "10.9.9.9"),
        ("IpAddress", "::1/128", "::1", "127.0.0.1"),
        ("NumericEquals", "5", "5.0", "6"),
        ("NumericNotEquals", "5", "6", "5"),
        ("NumericLessThan", "5", "4", "5"),
        ("NumericLessThanEquals", "5", "5", "6"),
        ("NumericGreaterThan", "5", "6", "5"),
        ("NumericGreaterThanEquals", "5", "5", "4"),
        ("DateLessThan", "2030-01-01T00:00:00Z", "2029-12-31T23:59:59Z", "2030-01-01T00:00:00Z"),
        ("DateGreaterThanEquals", "2030-01-01T00:00:00Z", "1893456000", "1893455999"),
        ("DateEquals", "2030-01-01T00:00:00Z", "2030-01-01T00:00:00+00:00", "2030-01-02"),
        ("DateNotEquals", "2030-01-01T00:00:00Z", "2030-01-02", "2030-01-01T00:00:00Z"),
        ("BinaryEquals", "aGk=", "aGk=", "aGo="),
    ],
)
def test_operator(operator, policy_value, yes, no):
    condition = {operator: {"k": policy_value}}
    assert allowed(condition, k=yes)
    assert not allowed(condition, k=no)


def test_arn_condition_refuses_values_that_are_not_arns():
    assert not allowed({"ArnLike": {"k": "*"}}, k="arn:aws:iot:r:1:topic/t")
    assert not allowed({"ArnLike": {"k": "arn:*:*:*:*:*"}}, k="not-an-arn")


def test_source_ip_condition():
    condition = {"IpAddress": {"aws:SourceIp": ["127.0.0.1/32", "10.0.0.0/8"]}}
    assert allowed(condition, **{"aws:SourceIp": "127.0.0.1"})
    assert allowed(condition, **{"aws:SourceIp": "10.200.0.1"})
    assert not allowed(condition, **{"aws:SourceIp": "127.0.0.2"})
    assert not allowed(condition, **{"aws:SourceIp": "garbage"})


def test_values_are_ored_and_keys_and_operators_are_anded():
    assert allowed({"StringEquals": {"k": ["a", "b"]}}, k="b")
    both = {"StringEquals": {"k": "a", "j": "b"}}
    assert allowed(both, k="a", j="b")
    assert not allowed(both, k="a", j="x")
    ops = {"StringEquals": {"k": "a"}, "Bool": {"b": "true"}}
    assert allowed(ops, k="a", b="true")
    assert not allowed(ops, k="a", b="false")


def test_negated_operator_with_several_values_is_nor():
    condition = {"StringNotEquals": {"k": ["a", "b"]}}
    assert allowed(condition, k="c")
    assert not allowed(condition, k="a")
    assert not allowed(condition, k="b")


def test_missing_key_fails_positive_and_passes_negated_operators():
    assert not allowed({"StringEquals": {"k": "a"}})
    assert not allowed({"Bool": {"k": "true"}})
    assert not allowed({"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}})
    assert allowed({"StringNotEquals": {"k": "a"}})
    assert allowed({"NotIpAddress": {"aws:SourceIp": "10.0.0.0/8"}})


def test_if_exists_passes_when_missing_and_checks_when_present():
    condition = {"StringEqualsIfExists": {"k": "a"}}
    assert allowed(condition)
    assert allowed(condition, k="a")
    assert not allowed(condition, k="b")


def test_null_operator_tests_presence():
    assert allowed({"Null": {"k": "true"}})
    assert not allowed({"Null": {"k": "true"}}, k="x")
    assert allowed({"Null": {"k": "false"}}, k="x")
    assert not allowed({"Null": {"k": "false"}})


def test_set_qualifiers_on_missing_and_present_keys():
    assert allowed({"ForAllValues:StringEquals": {"k": "a"}})
    assert not allowed({"ForAnyValue:StringEquals": {"k": "a"}})
    assert allowed({"ForAnyValue:StringLike": {"k": "a*"}}, k="abc")
    assert not allowed({"ForAllValues:StringLike": {"k": "a*"}}, k="xbc")


def test_condition_values_substitute_variables():
    condition = {"StringEquals": {"iot:ClientId": "${cognito-identity.amazonaws.com:sub}"}}
    sub = "us-east-1:1234"
    assert allowed(condition, **{"iot:ClientId": sub, "cognito-identity.amazonaws.com:sub": sub})
    assert not allowed(
        condition, **{"iot:ClientId": "other", "cognito-identity.amazonaws.com:sub": sub}
    )
    assert not allowed(condition, **{"iot:ClientId": sub})  # variable missing: no match


def test_condition_turns_a_deny_on_only_when_it_holds():
    p = policy(
        stmt(resource=T),
        stmt("Deny", resource=T, Condition={"NotIpAddress": {"aws:SourceIp": "127.0.0.0/8"}}),
    )
    assert decide(p, "iot:Publish", T, **{"aws:SourceIp": "127.0.0.1"}) is Decision.ALLOW
    assert decide(p, "iot:Publish", T, **{"aws:SourceIp": "8.8.8.8"}) is Decision.DENY_EXPLICIT


def test_arn_wildcards_stay_within_their_component():
    # a five-component pattern never stretches over the six components of a real ARN
    assert not allowed({"ArnLike": {"k": "arn:aws:iot:*:topic/t"}}, k="arn:aws:iot:r:1:topic/t")
    assert allowed({"ArnLike": {"k": "arn:aws:iot:*:*:topic/t"}}, k="arn:aws:iot:r:1:topic/t")
    # the region wildcard cannot swallow the account (a whole-string glob would match here)
    pattern = {"ArnLike": {"k": "arn:aws:iot:us*:1:topic/t"}}
    assert not allowed(pattern, k="arn:aws:iot:us-east-1:x:1:topic/t")
    assert allowed(pattern, k="arn:aws:iot:us-east-1:1:topic/t")


def test_arn_condition_with_a_variable_holding_colons():
    condition = {"ArnLike": {"k": "arn:aws:iot:*:*:client/${cognito-identity.amazonaws.com:sub}"}}
    sub = "us-east-1:abcd"
    context = {"cognito-identity.amazonaws.com:sub": sub}
    assert allowed(condition, k=f"arn:aws:iot:us-east-1:0:client/{sub}", **context)
    assert not allowed(condition, k="arn:aws:iot:us-east-1:0:client/us-east-1:other", **context)
