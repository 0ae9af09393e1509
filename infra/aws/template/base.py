"""What every part of the template shares: stack and resource naming, the ``Fn::Sub`` and
casing helpers, policy document shapes, and :class:`Template`, the resources built so far.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from policies.render import render_cloudformation

# Stack names end up in S3 bucket names (lowercase, 63 characters with the account and region
# appended) and in role and function names (64 characters), hence the tighter rule than
# CloudFormation's own.
STACK_NAME = re.compile(r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$|^[a-z]$")


class TemplateError(ValueError):
    """The folders describe something the template cannot express; names what and why."""


def check_stack_name(name: str) -> str:
    if not STACK_NAME.match(name):
        raise TemplateError(
            f"stack name {name!r}: use 1-24 characters of a-z, 0-9 and '-', starting with a "
            "letter and not ending with '-' (it becomes part of bucket, role and function names)"
        )
    return name


def rule_name(stack: str, stem: str) -> str:
    """A topic rule's AWS name: ``<stack>_<file stem>`` (rule names allow no ``-``)."""
    return f"{stack.replace('-', '_')}_{stem}"


def logical_id(*parts: str) -> str:
    """``("rule", "chat_room_message")`` -> ``RuleChatRoomMessage``."""
    words = [w for part in parts for w in re.split(r"[^A-Za-z0-9]+", part) if w]
    return "".join(w[:1].upper() + w[1:] for w in words)


def short_name(templated: str, where: str) -> str:
    """``{stack}-commands`` -> ``commands``; a name without the prefix would collide."""
    if not templated.startswith("{stack}-"):
        raise TemplateError(
            f"{where}: {templated!r} must start with '{{stack}}-' so that two stacks do not "
            "share it"
        )
    return templated.removeprefix("{stack}-")


def sub(text: str) -> dict[str, str]:
    """A name with the project's placeholders, as CloudFormation ``Fn::Sub``."""
    rendered = render_cloudformation(text)
    return rendered if isinstance(rendered, dict) else {"Fn::Sub": text}


def pascal_keys(node: Any) -> Any:
    """A ``TopicRulePayload`` in API casing -> CloudFormation's property casing."""
    if isinstance(node, list):
        return [pascal_keys(item) for item in node]
    if isinstance(node, dict):
        return {
            (key if key.startswith("Fn::") else key[:1].upper() + key[1:]): (
                value if key.startswith("Fn::") else pascal_keys(value)
            )
            for key, value in node.items()
        }
    return node


def checkov_skip(*checks: tuple[str, str]) -> dict[str, Any]:
    """Checkov suppressions, each with its reason (tests refuse an empty one)."""
    return {"checkov": {"skip": [{"id": check, "comment": reason} for check, reason in checks]}}


def policy_document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def trust_policy(
    principal: dict[str, Any], action: str, condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A trust policy: who may assume the role (``principal``), how, and on what condition."""
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": principal, "Action": action}
    if condition:
        statement["Condition"] = condition
    return policy_document(statement)


def service_trust(service: str, condition: dict[str, Any] | None = None) -> dict[str, Any]:
    """A trust policy that lets an AWS service assume the role."""
    return trust_policy({"Service": service}, "sts:AssumeRole", condition)


class Template:
    """The resources and outputs built so far for one stack, and the logical ids of what the
    folders declare (templated name ``{stack}-x`` -> logical id), so that a rule's references
    become ``DependsOn`` and a missing one is an error."""

    def __init__(
        self, stack: str, manifest_path: Path, rules_dir: Path, *, reserve_concurrency: bool = False
    ) -> None:
        self.stack = check_stack_name(stack)
        # Off by default: a reservation fails the whole stack on an account whose unreserved
        # concurrency cannot spare it (infra/aws/concurrency.py checks before deploying).
        self.reserve_concurrency = reserve_concurrency
        self.manifest_path = manifest_path
        self.rules_dir = rules_dir
        self.resources: dict[str, dict[str, Any]] = {}
        self.outputs: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, str] = {}
        self.functions: dict[str, str] = {}
        self.tables: dict[str, str] = {}
        self.streams: dict[str, str] = {}
        # A rule reference's kind -> (its declared names, what to say when one is missing).
        self.declared: dict[str, tuple[dict[str, str], str]] = {
            "function": (self.functions, "is not in the manifest"),
            "table": (self.tables, "is not in the manifest"),
            "stream": (self.streams, "is not in the manifest"),
            "role": (self.roles, "has no policies/iam file"),
        }

    def add(self, name: str, resource: dict[str, Any]) -> str:
        if name in self.resources:
            raise TemplateError(f"two resources would be called {name}")
        self.resources[name] = resource
        return name

    def allow_on_aws(
        self, role: str, policy_name: str, sid: str, action: str, resource: Any
    ) -> None:
        """Add to a role built from ``policies/iam`` an inline policy only AWS needs (the local
        stack has no such resource), so the policy file itself stays the local truth."""
        self.resources[self.roles[role]]["Properties"]["Policies"].append(
            {
                "PolicyName": policy_name,
                "PolicyDocument": policy_document(
                    {"Sid": sid, "Effect": "Allow", "Action": action, "Resource": resource}
                ),
            }
        )

    def output(self, name: str, value: Any, description: str, condition: str | None = None) -> None:
        out: dict[str, Any] = {"Description": description, "Value": value}
        if condition:
            out["Condition"] = condition
        self.outputs[name] = out
