"""Per-person command budgets: how many history pages, joins and direct messages one person
may ask for in a minute, all their sessions together (docs/protocol.md, "Fair use").

The count lives in the state table, not in a worker's memory, so it holds however many Lambda
workers run: each command is one conditional UpdateItem (``ADD`` under a limit), which
DynamoDB applies atomically. A refused command costs that one write and nothing else, so a
flood from one person never slows another person's commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .protocol import ProtocolError, error, ref_of
from .store import is_conditional_failure, to_item

WINDOW_MS = 60_000
# Per person and minute. A person reading back through a long room, joining their rooms after
# a restart and chatting fast stays well inside these; a script flooding does not.
LIMITS = {"history": 60, "join": 60, "direct": 60, "hello": 20, "name": 10, "whois": 60}
# Counters outlive their minute a little, then DynamoDB's TTL (on AWS) deletes them.
KEEP_SECONDS = 300


def budget_of(request: dict[str, Any]) -> str | None:
    """Which budget a request spends, if any."""
    kind = request.get("type")
    # hello with a token costs a Cognito GetId (an account-wide quota); a name change is one
    # publish per room the person is in.
    if kind in ("history", "join", "hello", "name", "whois"):
        return str(kind)
    if kind == "message" and "recipient" in request:
        return "direct"
    return None


@dataclass(frozen=True)
class RateLimited(ProtocolError):
    """RATE_LIMITED, with the seconds until the budget refills."""

    retry_after: int = WINDOW_MS // 1000

    def envelope(self) -> dict[str, Any]:
        body = error(self.code, self.message, self.ref)
        body["retryAfter"] = self.retry_after
        return body


class Budgets:
    """Fixed one-minute windows keyed by the rules engine's timestamp of the command."""

    def __init__(self, db: Any, state_table: str, limits: dict[str, int] | None = None) -> None:
        self.db = db
        self.state_table = state_table
        self.limits = LIMITS if limits is None else limits

    def spend(self, person: str, request: dict[str, Any], ts: int) -> None:
        """Count one command, or raise RateLimited when the person's budget is spent."""
        kind = budget_of(request)
        if kind is None or kind not in self.limits:
            return
        window = ts // WINDOW_MS
        try:
            self.db.update_item(
                TableName=self.state_table,
                Key=to_item({"pk": f"budget#{person}", "sk": f"{kind}#{window}"}),
                UpdateExpression="ADD #n :one SET #e = :expires",
                ConditionExpression="attribute_not_exists(#n) OR #n < :limit",
                ExpressionAttributeNames={"#n": "count", "#e": "expiresAt"},
                ExpressionAttributeValues=to_item(
                    {
                        ":one": 1,
                        ":limit": self.limits[kind],
                        ":expires": ts // 1000 + KEEP_SECONDS,
                    }
                ),
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise
            retry = max(1, ((window + 1) * WINDOW_MS - ts + 999) // 1000)
            raise RateLimited(
                "RATE_LIMITED",
                f"too many {kind} requests: at most {self.limits[kind]} a minute",
                ref_of(request),
                retry,
            ) from None
