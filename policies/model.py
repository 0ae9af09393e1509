"""Policy documents parsed and validated once, into statements that are cheap to evaluate.

The parser refuses what AWS refuses when a policy is created (unknown condition operators,
missing Effect, both Action and NotAction, ...), so a mistake in a project policy fails at
load time instead of silently denying or allowing at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.conditions import Condition, ConditionError
from policies.globs import compile_glob, compile_segments
from policies.variables import Template

VERSIONS = ("2012-10-17", "2008-10-17")
_STATEMENT_KEYS = {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
_ACTION = re.compile(r"^(\*|[A-Za-z0-9-]+:[A-Za-z0-9*?]+)$")


class PolicyError(ValueError):
    """A policy document AWS would refuse; the message names the policy and the problem."""


@dataclass(frozen=True, slots=True)
class Statement:
    """One compiled statement: action patterns, resource templates and conditions."""

    sid: str | None
    deny: bool
    actions: tuple[re.Pattern[str], ...]
    not_action: bool
    resources: tuple[Template, ...]
    static_resources: tuple[re.Pattern[str] | None, ...]
    not_resource: bool
    conditions: tuple[Condition, ...]

    @property
    def context_keys(self) -> frozenset[str]:
        keys: set[str] = set()
        for template in self.resources:
            keys |= template.keys
        for condition in self.conditions:
            keys |= condition.context_keys
        return frozenset(keys)

    def matches_action(self, action: str) -> bool:
        hit = any(pattern.fullmatch(action) for pattern in self.actions)
        return hit != self.not_action

    def matches_resource(self, resource: str, context: Mapping[str, str]) -> bool:
        hit = False
        for template, static in zip(self.resources, self.static_resources, strict=True):
            if static is not None:
                if static.fullmatch(resource):
                    hit = True
                    break
                continue
            segments = template.resolve(context)
            if segments is not None and compile_segments(segments).fullmatch(resource):
                hit = True
                break
        return hit != self.not_resource

    def applies(self, action: str, resource: str, context: Mapping[str, str]) -> bool:
        return (
            self.matches_action(action)
            and self.matches_resource(resource, context)
            and all(condition.holds(context) for condition in self.conditions)
        )


def _strings(where: str, value: object) -> list[str]:
    items = value if isinstance(value, list) else [value]
    strings = [item for item in items if isinstance(item, str) and item]
    if not items or len(strings) != len(items):
        raise PolicyError(f"{where}: expected a non-empty string or list of strings")
    return strings


def _statement(where: str, raw: object, variables: bool) -> Statement:
    if not isinstance(raw, dict):
        raise PolicyError(f"{where}: a statement must be an object")
    unknown = set(raw) - _STATEMENT_KEYS
    if unknown:
        raise PolicyError(f"{where}: unsupported element(s) {sorted(unknown)}")
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f"{where}: Effect must be Allow or Deny, not {effect!r}")
    if ("Action" in raw) == ("NotAction" in raw):
        raise PolicyError(f"{where}: exactly one of Action and NotAction is required")
    if ("Resource" in raw) == ("NotResource" in raw):
        raise PolicyError(f"{where}: exactly one of Resource and NotResource is required")
    action_key = "Action" if "Action" in raw else "NotAction"
    actions = _strings(f"{where}.{action_key}", raw[action_key])
    for action in actions:
        if not _ACTION.match(action):
            raise PolicyError(f"{where}.{action_key}: malformed action {action!r}")
    resource_key = "Resource" if "Resource" in raw else "NotResource"
    try:
        resources = tuple(
            Template.parse(text, variables)
            for text in _strings(f"{where}.{resource_key}", raw[resource_key])
        )
    except ValueError as exc:
        raise PolicyError(f"{where}.{resource_key}: {exc}") from exc
    conditions: list[Condition] = []
    block = raw.get("Condition", {})
    if not isinstance(block, dict):
        raise PolicyError(f"{where}.Condition: must be an object")
    for operator, pairs in block.items():
        if not isinstance(pairs, dict) or not pairs:
            raise PolicyError(f"{where}.Condition.{operator}: must map keys to values")
        for key, values in pairs.items():
            try:
                conditions.append(Condition.parse(operator, key, values, variables))
            except ConditionError as exc:
                raise PolicyError(f"{where}.Condition: {exc}") from exc
    return Statement(
        sid=raw.get("Sid"),
        deny=effect == "Deny",
        actions=tuple(compile_glob(action, ignore_case=True) for action in actions),
        not_action=action_key == "NotAction",
        resources=resources,
        static_resources=tuple(
            compile_segments(t.resolve({}) or ()) if t.static else None for t in resources
        ),
        not_resource=resource_key == "NotResource",
        conditions=tuple(conditions),
    )


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """A named, validated policy document (identity-based IAM policy or IoT policy)."""

    name: str
    document: Mapping[str, Any]
    statements: tuple[Statement, ...]
    context_keys: frozenset[str]

    @classmethod
    def parse(cls, name: str, source: str | bytes | Mapping[str, Any]) -> Policy:
        """Validate ``source`` (JSON text or a decoded document); raise :class:`PolicyError`."""
        if isinstance(source, (str, bytes)):
            try:
                document = json.loads(source)
            except ValueError as exc:
                raise PolicyError(f"policy {name!r}: not JSON: {exc}") from exc
        else:
            document = source
        if not isinstance(document, dict):
            raise PolicyError(f"policy {name!r}: the document must be a JSON object")
        unknown = set(document) - {"Version", "Id", "Statement"}
        if unknown:
            raise PolicyError(f"policy {name!r}: unsupported element(s) {sorted(unknown)}")
        version = document.get("Version", "2008-10-17")
        if version not in VERSIONS:
            raise PolicyError(f"policy {name!r}: unknown Version {version!r}")
        raw_statements = document.get("Statement")
        if isinstance(raw_statements, dict):
            raw_statements = [raw_statements]
        if not isinstance(raw_statements, list) or not raw_statements:
            raise PolicyError(f"policy {name!r}: Statement must be a non-empty list")
        # Policy variables only exist from Version 2012-10-17; before that ${...} is literal.
        variables = version == "2012-10-17"
        statements = tuple(
            _statement(f"policy {name!r} Statement[{i}]", raw, variables)
            for i, raw in enumerate(raw_statements)
        )
        keys: frozenset[str] = frozenset().union(*(s.context_keys for s in statements))
        return cls(name, document, statements, keys)
