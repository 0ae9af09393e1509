"""The rules on one message without their actions: ``iotchat rules test``.

Each rule is compiled and matched exactly as :class:`~infra.local.rules.engine.RulesEngine`
does (FROM filter, then SQL with WHERE), and each action's target is substituted as the action
would (:mod:`.targets`), but nothing is published, invoked or written. SQL functions that call
services (``aws_lambda()``, ``get_dynamodb()``) have no services here and return Undefined.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from infra.local.rules.engine import CompiledRule, compile_rule
from infra.local.rules.targets import action_target
from iot_rules.loader import RuleDefinition
from iot_rules.sql import Result, SqlMessage


def test_rules(
    definitions: list[RuleDefinition], topic: str, payload: bytes, client_id: str = "n/a"
) -> list[dict[str, Any]]:
    """One outcome per rule: ``matched``, why not (``why``), the SELECT ``output``, and each
    action's and the errorAction's ``{"action", "target"}``."""
    msg = SqlMessage(
        topic=topic,
        payload=payload,
        client_id=client_id,
        timestamp_ms=int(time.time() * 1000),
        trace_id=str(uuid.uuid4()),
    )
    return [_outcome(definition, msg) for definition in definitions]


def _outcome(definition: RuleDefinition, msg: SqlMessage) -> dict[str, Any]:
    outcome: dict[str, Any] = {
        "rule": definition.name,
        "matched": False,
        "why": None,
        "output": None,
        "actions": [],
        "errorAction": None,
    }
    if definition.disabled:
        outcome["why"] = "disabled"
        return outcome
    rule = compile_rule(definition)
    if not rule.statement.matches(msg.topic):
        outcome["why"] = "topic"
        return outcome
    result = rule.statement.evaluate(msg, None)
    if result is None:
        outcome["why"] = "WHERE"
        return outcome
    outcome.update(matched=True, output=_output(result), actions=_targets(rule, msg))
    if rule.error_action is not None:
        outcome["errorAction"] = _describe(rule.error_action, msg)
    return outcome


def _targets(rule: CompiledRule, msg: SqlMessage) -> list[dict[str, str]]:
    return [_describe(action, msg) for action in (*rule.republish, *rule.other_actions)]


def _describe(action: Any, msg: SqlMessage) -> dict[str, str]:
    kind = next(iter(action_kind(action)))
    return {"action": kind, "target": action_target(action, msg, None)}


def action_kind(action: Any) -> list[str]:
    """The action's key in a rule file (``republish``, ``lambda``, ...)."""
    from infra.local.rules.actions import ACTION_TYPES

    return [key for key, factory in ACTION_TYPES.items() if type(action) is factory] or [
        type(action).__name__
    ]


def _output(result: Result) -> Any:
    if result.raw is not None:
        return result.raw.decode("utf-8", "replace")
    return json.loads(result.to_bytes())
