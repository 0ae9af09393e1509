"""The chat's tables (docs/data-model.md) behind one class, over a low-level DynamoDB client.

Every read is a key lookup or a Query with a key condition and a ``Limit``; every write that
must happen once is conditional. The class takes any object with boto3's DynamoDB client
methods, so tests pass a client for dynalite or moto.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

from . import keys
from .protocol import MAX_PAGE_BYTES, RETENTION_DAYS, VERSION, dumps

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()

BY_TIME = "byTime"
# Reading a room's members to answer "who" stops after this many items (online or not).
WHO_MAX_READ = 1000
WHO_MAX_ONLINE = 100
# A message re-sent with many different texts: history weighs at most this many of its copies.
COPIES_READ = 32
# How many of those reads a history page makes at once.
COPY_READERS = 10
# A history page that met only later copies reads on this many times before it answers empty.
HISTORY_READS = 4


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in values.items() if v is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in item.items():
        plain = _deserializer.deserialize(value)
        if isinstance(plain, Decimal):
            plain = int(plain) if plain == plain.to_integral_value() else float(plain)
        out[key] = plain
    return out


# The attribute names items stored before the protocol renamed its fields used (the rules read
# no SQL word since, docs/iot-sql.md): read as the new names, never written (docs/data-model.md,
# "Migration").
LEGACY_FIELDS = {"text": "body", "to": "recipient", "group": "groupId"}


def current_fields(item: dict[str, Any]) -> dict[str, Any]:
    """``item`` with any legacy attribute under its new name (a new one present wins)."""
    out = {LEGACY_FIELDS.get(k, k): v for k, v in item.items() if k in LEGACY_FIELDS}
    out.update({k: v for k, v in item.items() if k not in LEGACY_FIELDS})
    return out


def wire_message(item: dict[str, Any]) -> dict[str, Any]:
    """A stored message as clients see it on a room topic or in a history page."""
    item = current_fields(item)
    body: dict[str, Any] = {"v": VERSION, "type": "message", "id": item["id"]}
    # No "name": names come from the sender's profile (lambdas/chat/people.py), never from
    # what a message claimed; an edited message says when, a deleted one has no body.
    for field in ("room", "recipient", "groupId", "body", "sender", "ts", "edited", "deleted"):
        if item.get(field) is not None:
            body[field] = item[field]
    return body


@dataclass(frozen=True)
class Page:
    messages: list[dict[str, Any]]
    cursor: keys.Cursor | None


def _cursor_after(item: dict[str, Any]) -> keys.Cursor:
    """The cursor of the page that starts after ``item`` (an older message)."""
    return keys.Cursor(item["tsid"], item["mid"])


def is_conditional_failure(exc: Exception) -> bool:
    """Whether a write failed only because its condition did not hold."""
    response = getattr(exc, "response", None) or {}
    return response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class ChatStore:
    def __init__(
        self,
        dynamodb: Any,
        messages_table: str,
        state_table: str,
        retention_days: int = RETENTION_DAYS,
    ) -> None:
        self.db = dynamodb
        self.messages_table = messages_table
        self.state_table = state_table
        self.retention_seconds = retention_days * 86400

    # ------------------------------------------------------------------ messages

    def put_message(self, conv: str, message: dict[str, Any]) -> bool:
        """Store a message once; False when this sender's ``id`` is already stored."""
        item_mid = keys.mid(message["sender"], message["id"])
        values = {
            **{k: v for k, v in message.items() if k not in ("v", "type")},
            "conv": conv,
            "mid": item_mid,
            "tsid": keys.tsid(message["ts"], item_mid),
            "expiresAt": message["ts"] // 1000 + self.retention_seconds,
        }
        try:
            self.db.put_item(
                TableName=self.messages_table,
                Item=to_item(values),
                ConditionExpression="attribute_not_exists(mid)",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def get_message(self, conv: str, item_mid: str) -> dict[str, Any] | None:
        item = self.db.get_item(
            TableName=self.messages_table,
            Key=to_item({"conv": conv, "mid": item_mid}),
            ConsistentRead=True,
        ).get("Item")
        return from_item(item) if item else None

    def message_copies(
        self, conv: str, item_mid: str, limit: int | None = COPIES_READ
    ) -> list[dict[str, Any]]:
        """The items of one message: ``item_mid`` itself and the store rule's copies of it
        (``<mid>#<digest>``, one per distinct text), strongly consistent; all of them when
        ``limit`` is None."""
        low, high = keys.copies_range(item_mid)
        request: dict[str, Any] = {
            "TableName": self.messages_table,
            "KeyConditionExpression": "conv = :c AND mid BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": to_item({":c": conv, ":lo": low, ":hi": high}),
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                request["Limit"] = limit - len(found)
            response = self.db.query(**request)
            found += [from_item(item) for item in response.get("Items", [])]
            start = response.get("LastEvaluatedKey")
            if not start or (limit is not None and len(found) >= limit):
                return found
            request["ExclusiveStartKey"] = start

    def _is_first_copy(self, conv: str, item: dict[str, Any]) -> bool:
        """Whether a room item is the first stored copy of its message (earliest ``tsid``):
        the one live readers kept, and the only one history shows."""
        copies = self.message_copies(conv, keys.mid(item["sender"], item["id"]))
        timed = [copy["tsid"] for copy in copies if copy.get("tsid")]
        return not timed or min(timed) == item["tsid"]

    def _first_copies(self, conv: str, items: list[dict[str, Any]]) -> list[bool]:
        """``_is_first_copy`` of each item, the reads side by side (one Query per message)."""
        if not conv.startswith("room#"):
            return [True] * len(items)  # written by the commands Lambda, conditionally

        def first(item: dict[str, Any]) -> bool:
            # Under the plain key: an item of an earlier version or one an edit gathered, at
            # its message's first time; every copy beside it came later.
            if item["mid"] == keys.mid(item["sender"], item["id"]):
                return True
            return self._is_first_copy(conv, item)

        if len(items) < 2:
            return [first(item) for item in items]
        with ThreadPoolExecutor(max_workers=min(len(items), COPY_READERS)) as pool:
            return list(pool.map(first, items))

    def history_page(
        self,
        conv: str,
        limit: int,
        cursor: keys.Cursor | None = None,
        max_bytes: int = MAX_PAGE_BYTES,
    ) -> Page:
        """Newest first, at most ``limit`` messages and ``max_bytes`` of JSON, with a cursor
        to the next (older) page, or None when nothing older exists. A room message stored
        more than once (re-sent with another text) shows once, as first stored."""
        messages: list[dict[str, Any]] = []
        size = 0
        last: dict[str, Any] | None = None  # the last item this page has passed
        for _ in range(HISTORY_READS):
            request: dict[str, Any] = {
                "TableName": self.messages_table,
                "IndexName": BY_TIME,
                "KeyConditionExpression": "conv = :c",
                "ExpressionAttributeValues": {":c": {"S": conv}},
                "ScanIndexForward": False,
                "ConsistentRead": True,
                # One more than asked for tells whether an older page exists.
                "Limit": limit - len(messages) + 1,
            }
            if cursor is not None:
                request["ExclusiveStartKey"] = {
                    "conv": {"S": conv},
                    "mid": {"S": cursor.mid},
                    "tsid": {"S": cursor.tsid},
                }
            items = [from_item(item) for item in self.db.query(**request).get("Items", [])]
            wanted = limit - len(messages)
            firsts = self._first_copies(conv, items[:wanted])
            for item, first in zip(items[:wanted], firsts, strict=True):
                if first:
                    body = wire_message(item)
                    size += len(dumps(body)) + 1
                    if messages and size > max_bytes:
                        return Page(messages, _cursor_after(last) if last else None)
                    messages.append(body)
                last = item
            if len(items) <= wanted or last is None:
                return Page(messages, None)
            cursor = _cursor_after(last)
            if messages:
                return Page(messages, cursor)
        # Only later copies so far: an empty page that still says where to go on.
        return Page(messages, cursor)

    # ------------------------------------------------------------------ rooms

    def _put_state(self, *items: dict[str, Any]) -> None:
        """Idempotent puts: an item and its reverse-direction twin (docs/data-model.md)."""
        for values in items:
            self.db.put_item(TableName=self.state_table, Item=to_item(values))

    def join(self, room: str, client_id: str, name: str | None, online: bool, now: int) -> None:
        self._put_state(
            {
                "pk": f"room#{room}",
                "sk": f"member#{client_id}",
                "clientId": client_id,
                "name": name,
                "joinedAt": now,
                "online": online,
            },
            {"pk": f"client#{client_id}", "sk": f"room#{room}", "room": room, "joinedAt": now},
        )

    def leave(self, room: str, client_id: str) -> bool:
        """Forget the membership; True when there was one."""
        return self.delete_pair(
            {"pk": f"room#{room}", "sk": f"member#{client_id}"},
            {"pk": f"client#{client_id}", "sk": f"room#{room}"},
        )

    def delete_pair(self, key: dict[str, str], mirror: dict[str, str]) -> bool:
        """Delete a state item and its mirror (the same fact keyed the other way round);
        True when the first existed."""
        old = self.db.delete_item(
            TableName=self.state_table, Key=to_item(key), ReturnValues="ALL_OLD"
        )
        self.db.delete_item(TableName=self.state_table, Key=to_item(mirror))
        return bool(old.get("Attributes"))

    def _state_items(self, pk: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        """Items of one partition of the state table whose sort key starts with ``prefix``."""
        response = self.db.query(
            TableName=self.state_table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues=to_item({":p": pk, ":s": prefix}),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(item) for item in response.get("Items", [])]

    def rooms_of(self, client_id: str, limit: int = 51) -> list[str]:
        return [item["room"] for item in self._state_items(f"client#{client_id}", "room#", limit)]

    def room_member(self, room: str, client_id: str) -> dict[str, Any] | None:
        item = self.db.get_item(
            TableName=self.state_table,
            Key=to_item({"pk": f"room#{room}", "sk": f"member#{client_id}"}),
            ConsistentRead=True,
        ).get("Item")
        return from_item(item) if item else None

    def set_online(self, room: str, client_id: str, online: bool) -> dict[str, Any] | None:
        """Mark a member online or offline; the member item, or None when no longer a member."""
        try:
            response = self.db.update_item(
                TableName=self.state_table,
                Key=to_item({"pk": f"room#{room}", "sk": f"member#{client_id}"}),
                UpdateExpression="SET #o = :o",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#o": "online"},
                ExpressionAttributeValues={":o": {"BOOL": online}},
                ReturnValues="ALL_NEW",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return None
            raise
        return from_item(response["Attributes"])

    def online_members(self, room: str) -> tuple[list[dict[str, Any]], bool]:
        """Up to 100 online members, reading at most 1,000 member items; ``more`` if cut."""
        online: list[dict[str, Any]] = []
        read = 0
        start: dict[str, Any] | None = None
        while True:
            request: dict[str, Any] = {
                "TableName": self.state_table,
                "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
                "FilterExpression": "#o = :t",
                "ExpressionAttributeNames": {"#o": "online"},
                "ExpressionAttributeValues": {
                    ":p": {"S": f"room#{room}"},
                    ":s": {"S": "member#"},
                    ":t": {"BOOL": True},
                },
                "Limit": min(200, WHO_MAX_READ - read),
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = self.db.query(**request)
            read += response.get("ScannedCount", 0)
            for item in map(from_item, response.get("Items", [])):
                entry = {"clientId": item["clientId"]}
                if item.get("name"):
                    entry["name"] = item["name"]
                online.append(entry)
                if len(online) >= WHO_MAX_ONLINE:
                    return online, True
            start = response.get("LastEvaluatedKey")
            if not start:
                return online, False
            if read >= WHO_MAX_READ:
                return online, True

    # ------------------------------------------------------------------ presence

    def record_connection(
        self, client_id: str, *, connected: bool, version: int, ts: int, session_id: str
    ) -> bool:
        """Apply a lifecycle event unless a newer one was applied; True when it changed state."""
        try:
            self.db.update_item(
                TableName=self.state_table,
                Key=to_item({"pk": f"client#{client_id}", "sk": "presence"}),
                UpdateExpression="SET #c = :c, #v = :v, #t = :ts, #s = :s",
                ConditionExpression=(
                    "attribute_not_exists(#v) OR #v < :v OR (#v = :v AND (#t < :ts"
                    # A connection's disconnect wins over its connect at the same millisecond.
                    + ("" if connected else " OR (#t = :ts AND #c = :true)")
                    + "))"
                ),
                ExpressionAttributeNames={
                    "#c": "connected",
                    "#v": "version",
                    "#t": "eventTs",
                    "#s": "sessionId",
                },
                ExpressionAttributeValues=to_item(
                    {
                        ":c": connected,
                        ":v": version,
                        ":ts": ts,
                        ":s": session_id,
                        **({} if connected else {":true": True}),
                    }
                ),
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def is_connected(self, client_id: str) -> bool:
        item = self.db.get_item(
            TableName=self.state_table,
            Key=to_item({"pk": f"client#{client_id}", "sk": "presence"}),
            ConsistentRead=True,
        ).get("Item")
        return bool(item and from_item(item).get("connected"))

    # ------------------------------------------------------------------ groups

    def create_group(self, group: str, name: str, owner: str, now: int) -> bool:
        try:
            self.db.put_item(
                TableName=self.state_table,
                Item=to_item(
                    {
                        "pk": f"group#{group}",
                        "sk": "meta",
                        "name": name,
                        "owner": owner,
                        "createdAt": now,
                    }
                ),
                ConditionExpression="attribute_not_exists(pk)",
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def group_meta(self, group: str) -> dict[str, Any] | None:
        item = self.db.get_item(
            TableName=self.state_table,
            Key=to_item({"pk": f"group#{group}", "sk": "meta"}),
            ConsistentRead=True,
        ).get("Item")
        return from_item(item) if item else None

    def add_group_members(
        self, group: str, name: str, members: Iterable[str], added_by: str, now: int
    ) -> None:
        for member in members:
            self._put_state(
                {
                    "pk": f"group#{group}",
                    "sk": f"member#{member}",
                    "clientId": member,
                    "addedBy": added_by,
                    "joinedAt": now,
                },
                {"pk": f"client#{member}", "sk": f"group#{group}", "group": group, "name": name},
            )

    def group_members(self, group: str, limit: int = 101) -> list[str]:
        return [item["clientId"] for item in self._state_items(f"group#{group}", "member#", limit)]

    def is_group_member(self, group: str, client_id: str) -> bool:
        item = self.db.get_item(
            TableName=self.state_table,
            Key=to_item({"pk": f"group#{group}", "sk": f"member#{client_id}"}),
            ConsistentRead=True,
        ).get("Item")
        return item is not None
