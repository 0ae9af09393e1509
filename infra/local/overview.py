"""What the developer page lists about a running stack: rules, functions, tables, clients.

Read from the live components on the stack's event loop, so it is what the stack does now, not
what its files say: the loaded rules with their match counts, each function's warm workers,
each declared table's item count (counted by the DynamoDB service itself), and every connected
client with its subscriptions.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

# Counting a table reads it all; a page of the overview reads at most this many pages each,
# and a count is reused for this long (the page refreshes every few seconds).
MAX_COUNT_PAGES = 20
COUNT_TTL = 10.0


class StackOverview:
    """``await overview()``: the lists, read now; table counts at most every COUNT_TTL."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self._counted: dict[str, tuple[float, dict[str, Any]]] = {}

    async def __call__(self) -> dict[str, Any]:
        stack = self.stack
        return {
            "rules": _rules(stack),
            "functions": _functions(stack),
            "tables": [await self._count(name) for name in stack.declared_tables],
            "clients": _clients(stack),
        }

    async def _count(self, name: str) -> dict[str, Any]:
        now = time.monotonic()
        cached = self._counted.get(name)
        if cached is None or now - cached[0] > COUNT_TTL:
            cached = (now, await _table(self.stack, name))
            self._counted[name] = cached
        return cached[1]


def _rules(stack: LocalStack) -> list[dict[str, Any]]:
    engine = stack.rules
    if engine is None:
        return []
    rules = []
    for rule in engine.rules:
        stats = engine.stats.get(rule.name)
        error_action = rule.error_action.name if rule.error_action is not None else None
        rules.append(
            {
                "name": rule.name,
                "sql": rule.definition.sql,
                "actions": [a.name for a in (*rule.republish, *rule.other_actions)],
                "errorAction": error_action,
                "matched": stats.matched if stats else 0,
                "failed": stats.actions_failed if stats else 0,
            }
        )
    return rules


def _functions(stack: LocalStack) -> list[dict[str, Any]]:
    runtime = stack.lambdas
    if runtime is None:
        return []
    return [
        {
            "name": name,
            "handler": runtime.pool(name).spec.handler,
            "warmWorkers": runtime.pool(name).worker_count,
        }
        for name in runtime.function_names()
    ]


async def _table(stack: LocalStack, name: str) -> dict[str, Any]:
    """The table's item count (``None`` with the reason when it cannot be read)."""
    count = 0
    request: dict[str, Any] = {"TableName": name, "Select": "COUNT"}
    try:
        for _ in range(MAX_COUNT_PAGES):
            page = await stack.direct_json("dynamodb", "Scan", request)
            count += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return {"name": name, "items": count}
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    except Exception as exc:  # a deleted table: the page says so instead of failing
        return {"name": name, "items": None, "error": str(exc)}
    return {"name": name, "items": count, "more": True}


def _clients(stack: LocalStack) -> list[dict[str, Any]]:
    gateway = stack.gateway
    if gateway is None:
        return []
    clients = []
    for client_id, conn in sorted(gateway.broker.connections.items()):
        session = conn.session
        clients.append(
            {
                "clientId": client_id,
                "principal": conn.principal.identifier if conn.principal else None,
                "listener": conn.listener,
                "subscriptions": sorted(session.subscriptions) if session else [],
            }
        )
    return clients
