"""Who is online: a person is online while any of their sessions is connected.

AWS IoT sends a lifecycle event per client id, so per session; they may come twice and out of
order, and a connection's ``connected`` and ``disconnected`` share its ``versionNumber``
(https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html). Each session's
latest event lives in one map on the person's ``presence`` item, and every event is one
conditional UpdateItem of that map entry: the ordering check and the person's state change
together, so two workers handling two sessions (or the two events of one short session) at
once can never leave a person online with no session connected, or offline with one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .store import WHO_MAX_ONLINE, WHO_MAX_READ, from_item, is_conditional_failure, to_item

SESSIONS = "sessions"  # map: client id -> {"v": versionNumber, "t": timestamp, "c": connected}
# A disconnected session's entry is kept this long after its event, so that a late duplicate
# (or a late ``connected`` of the same connection) is still recognised as old; then dropped,
# which bounds the item however many short sessions a person opens.
KEEP_DISCONNECTED_MS = 15 * 60 * 1000
PRUNE_AT = 32  # entries in the map before a prune is attempted
BATCH_GET = 100  # DynamoDB BatchGetItem's most keys per request


@dataclass(frozen=True)
class Change:
    """A person's online state before and after one applied lifecycle event."""

    was_online: bool
    is_online: bool


def _online(sessions: dict[str, Any] | None) -> bool:
    return any(entry.get("c") for entry in (sessions or {}).values())


def _is_missing_map(exc: Exception) -> bool:
    """DynamoDB refuses a document path into a map that does not exist yet."""
    response = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code == "ValidationException"


class OnlineState:
    """The ``presence`` item of each person in the state table (docs/data-model.md)."""

    def __init__(self, db: Any, state_table: str) -> None:
        self.db = db
        self.state_table = state_table

    def _key(self, person: str) -> dict[str, Any]:
        return to_item({"pk": f"client#{person}", "sk": "presence"})

    def record(
        self, person: str, client_id: str, *, connected: bool, version: int, ts: int
    ) -> Change | None:
        """Apply one session's lifecycle event; None when a newer one (or this one) was
        applied already. A repeat of the applied event passes again, unchanged, so a retried
        invocation finds the state it left and changes nothing."""
        entry = {"v": version, "t": ts, "c": connected}
        condition = (
            "attribute_not_exists(#m.#k) OR #m.#k.#v < :v OR (#m.#k.#v = :v AND (#m.#k.#t < :t"
            " OR (#m.#k.#t = :t AND #m.#k.#c = :c)"
            # A connection's disconnect wins over its connect at the same millisecond.
            + ("" if connected else " OR (#m.#k.#t = :t AND #m.#k.#c = :true)")
            + "))"
        )
        request = {
            "TableName": self.state_table,
            "Key": self._key(person),
            "UpdateExpression": "SET #m.#k = :e",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {
                "#m": SESSIONS,
                "#k": client_id,
                "#v": "v",
                "#t": "t",
                "#c": "c",
            },
            "ExpressionAttributeValues": to_item(
                {
                    ":e": entry,
                    ":v": version,
                    ":t": ts,
                    ":c": connected,
                    **({} if connected else {":true": True}),
                }
            ),
            "ReturnValues": "ALL_OLD",
        }
        try:
            try:
                response = self.db.update_item(**request)
            except Exception as exc:
                if not _is_missing_map(exc):
                    raise
                # The person's first event: make the map, then apply the event as above.
                self.db.update_item(
                    TableName=self.state_table,
                    Key=self._key(person),
                    UpdateExpression="SET #m = if_not_exists(#m, :empty)",
                    ExpressionAttributeNames={"#m": SESSIONS},
                    ExpressionAttributeValues={":empty": {"M": {}}},
                )
                response = self.db.update_item(**request)
        except Exception as exc:
            if is_conditional_failure(exc):
                return None
            raise
        before = from_item(response.get("Attributes") or {}).get(SESSIONS) or {}
        after = {**before, client_id: entry}
        if len(after) > PRUNE_AT:
            self._prune(person, after, ts)
        return Change(_online(before), _online(after))

    def _prune(self, person: str, sessions: dict[str, Any], now: int) -> None:
        """Drop sessions that disconnected long ago, each only if still as we saw it."""
        old = [
            cid
            for cid, entry in sessions.items()
            if not entry.get("c") and now - int(entry.get("t", 0)) > KEEP_DISCONNECTED_MS
        ][:PRUNE_AT]
        if not old:
            return
        names = {"#m": SESSIONS, "#c": "c", "#t": "t"}
        values: dict[str, Any] = {":false": {"BOOL": False}}
        removes, checks = [], []
        for i, cid in enumerate(old):
            names[f"#k{i}"] = cid
            values[f":t{i}"] = {"N": str(int(sessions[cid]["t"]))}
            removes.append(f"#m.#k{i}")
            checks.append(f"(#m.#k{i}.#c = :false AND #m.#k{i}.#t = :t{i})")
        try:
            self.db.update_item(
                TableName=self.state_table,
                Key=self._key(person),
                UpdateExpression="REMOVE " + ", ".join(removes),
                ConditionExpression=" AND ".join(checks),
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise  # a session changed meanwhile: the next event prunes

    def is_online(self, person: str) -> bool:
        item = self.db.get_item(
            TableName=self.state_table, Key=self._key(person), ConsistentRead=True
        ).get("Item")
        return _online(from_item(item).get(SESSIONS) if item else None)

    def online_among(self, people: Iterable[str]) -> set[str]:
        """Which of ``people`` are online, BatchGetItem by 100 (strongly consistent)."""
        wanted = list(dict.fromkeys(people))
        online: set[str] = set()
        for start in range(0, len(wanted), BATCH_GET):
            keys = [self._key(p) for p in wanted[start : start + BATCH_GET]]
            for _ in range(5):  # unprocessed keys come back under throttling: ask again
                response = self.db.batch_get_item(
                    RequestItems={
                        self.state_table: {
                            "Keys": keys,
                            "ConsistentRead": True,
                            "ProjectionExpression": "pk, #m",
                            "ExpressionAttributeNames": {"#m": SESSIONS},
                        }
                    }
                )
                for item in response.get("Responses", {}).get(self.state_table, []):
                    values = from_item(item)
                    if _online(values.get(SESSIONS)):
                        online.add(str(values["pk"]).removeprefix("client#"))
                keys = response.get("UnprocessedKeys", {}).get(self.state_table, {}).get("Keys")
                if not keys:
                    break
        return online

    def online_members(self, room: str) -> tuple[list[dict[str, Any]], bool]:
        """Up to 100 online members of a room, reading at most 1,000 member items; ``more``
        when cut. Members are read by Query, their state by BatchGetItem: no flag per room to
        keep in step with the sessions."""
        members: list[str] = []
        start: dict[str, Any] | None = None
        cut = False
        while True:
            request: dict[str, Any] = {
                "TableName": self.state_table,
                "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
                "ExpressionAttributeValues": to_item({":p": f"room#{room}", ":s": "member#"}),
                "Limit": min(200, WHO_MAX_READ - len(members)),
                "ConsistentRead": True,
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = self.db.query(**request)
            members += [str(from_item(i)["clientId"]) for i in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start:
                break
            if len(members) >= WHO_MAX_READ:
                cut = True
                break
        online = self.online_among(members)
        people = [p for p in members if p in online]
        entries = [{"person": p, "clientId": p} for p in people[:WHO_MAX_ONLINE]]
        return entries, cut or len(people) > WHO_MAX_ONLINE
