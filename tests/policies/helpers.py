"""Small builders shared by the policy tests."""

from __future__ import annotations

from typing import Any

from policies.evaluator import Decision, Policy, Request, evaluate

REGION = "us-east-1"
ACCOUNT = "000000000000"
PREFIX = f"arn:aws:iot:{REGION}:{ACCOUNT}:"


def stmt(effect: str = "Allow", action: Any = "iot:Publish", resource: Any = "*", **extra: Any):
    statement = {"Effect": effect, "Action": action, "Resource": resource}
    statement.update(extra)
    return statement


def policy(*statements: dict[str, Any], name: str = "test") -> Policy:
    return Policy.parse(name, {"Version": "2012-10-17", "Statement": list(statements)})


def decide(policies: Policy | list[Policy], action: str, resource: str, **context: str) -> Decision:
    if isinstance(policies, Policy):
        policies = [policies]
    return evaluate(policies, Request(action, resource, context))


def topic(name: str) -> str:
    return PREFIX + "topic/" + name


def tfilter(name: str) -> str:
    return PREFIX + "topicfilter/" + name


def client(name: str) -> str:
    return PREFIX + "client/" + name
