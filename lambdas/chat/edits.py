"""Editing and deleting one's own messages (docs/protocol.md, "Edits and deletions").

Ownership is the message's key: a message is stored under ``<sender>|<id>`` (lambdas/chat/keys),
so a person can only ever name their own messages, and a request that says the message is
someone else's is refused with NOT_OWNER before anything is read.

A change is written twice: into the message item itself (the old text is removed from it) and
into a revision item ``rev#<sender>|<id>`` of the same conversation. Room messages are stored by
a rule's ``dynamoDBv2`` action, which has no condition
(https://docs.aws.amazon.com/iot/latest/developerguide/dynamodb-v2-rule-action.html), so a late
redelivery of the original can land on the message item again; the revision item has no
``tsid``, so it is in no history page by itself, and history applies it to the message it names,
so a deleted message never comes back and an edit is never undone.

The store rule keeps each distinct text of a room message in its own copy
(``<sender>|<id>#<digest>``, lambdas/chat/keys.copy_mid). A change gathers every copy into one
item under the plain key ``<sender>|<id>``, at the first copy's time, and deletes the copies, so
neither an older text nor its digest stays in the table.
"""

from __future__ import annotations

from typing import Any

from . import keys
from .people import Directory
from .protocol import (
    VERSION,
    ProtocolError,
    inbox,
    require_group,
    require_id,
    require_room,
    require_text,
    room_events_topic,
)
from .publisher import Publisher
from .store import ChatStore, current_fields, from_item, to_item

REVISION = "rev#"


def revision_mid(item_mid: str) -> str:
    return REVISION + item_mid


class Edits:
    """The ``edit`` and ``delete`` commands."""

    def __init__(self, store: ChatStore, publisher: Publisher) -> None:
        self.store = store
        self.directory = Directory(store)
        self.publisher = publisher

    def edit(self, request: dict[str, Any], sender: str, ts: int) -> None:
        text = require_text(request)
        self._change(request, sender, ts, text)

    def delete(self, request: dict[str, Any], sender: str, ts: int) -> None:
        self._change(request, sender, ts, None)

    def _change(self, request: dict[str, Any], sender: str, ts: int, text: str | None) -> None:
        message_id = require_id(request)
        if request.get("sender", sender) != sender:
            raise ProtocolError(
                "NOT_OWNER", "only its sender can edit or delete a message", message_id
            )
        conv, target, audience = self._conversation(request, sender, message_id)
        item_mid = keys.mid(sender, message_id)
        copies = self.store.message_copies(conv, item_mid, limit=None)
        timed = [copy for copy in copies if copy.get("tsid")]
        first = min(timed, key=lambda copy: copy["tsid"]) if timed else None
        earlier = self.store.get_message(conv, revision_mid(item_mid))
        if first is None or first.get("deleted") or (earlier or {}).get("deleted"):
            raise ProtocolError("NOT_FOUND", "no such message of yours", message_id)
        if text is None:
            revision: dict[str, Any] = {"deleted": ts}
        else:
            revision = {"body": text, "edited": ts}
        self._write(conv, item_mid, first, copies, revision)
        body: dict[str, Any] = {
            "v": VERSION,
            "type": "edit" if text is not None else "delete",
            "id": message_id,
            "sender": sender,
            **target,
            **revision,
        }
        for topic in audience:
            self.publisher.publish(topic, body)

    def _conversation(
        self, request: dict[str, Any], sender: str, ref: str
    ) -> tuple[str, dict[str, str], list[str]]:
        """The conversation's key, the target fields of the event, and where it goes."""
        targets = [f for f in ("room", "with", "groupId") if f in request]
        if len(targets) != 1:
            raise ProtocolError(
                "INVALID_TARGET", "an edit or delete needs exactly one of room, with, groupId", ref
            )
        if targets == ["room"]:
            room = require_room(request)
            return keys.room_conv(room), {"room": room}, [room_events_topic(room)]
        if targets == ["with"]:
            other = self.directory.resolve(request["with"], ref, "with")
            # As on the wire, `to` names the other party from the sender's side.
            people = sorted({sender, other})
            return keys.direct_conv(sender, other), {"recipient": other}, [inbox(p) for p in people]
        group = require_group(request)
        if not self.store.is_group_member(group, sender):
            raise ProtocolError("NOT_A_MEMBER", "only members can change group messages", ref)
        members = self.store.group_members(group)
        return keys.group_conv(group), {"groupId": group}, [inbox(m) for m in members]

    def _write(
        self,
        conv: str,
        item_mid: str,
        first: dict[str, Any],
        copies: list[dict[str, Any]],
        revision: dict[str, Any],
    ) -> None:
        """One item at the first copy's time holds the change; the other copies go (and with
        them every old text); the revision item keeps the change safe from a late copy."""
        gone = ("body", "name", "edited", "deleted")  # an item stored before the rename migrates
        kept = {k: v for k, v in current_fields(first).items() if k not in gone}
        kept.update(mid=item_mid, tsid=keys.tsid(first["ts"], item_mid), **revision)
        table = self.store.messages_table
        self.store.db.put_item(TableName=table, Item=to_item(kept))
        for copy in copies:
            if copy["mid"] != item_mid:
                self.store.db.delete_item(
                    TableName=table, Key=to_item({"conv": conv, "mid": copy["mid"]})
                )
        self.store.db.put_item(
            TableName=table,
            Item=to_item(
                {
                    "conv": conv,
                    "mid": revision_mid(item_mid),
                    **revision,
                    "expiresAt": revision.get("edited", revision.get("deleted", 0)) // 1000
                    + self.store.retention_seconds,
                }
            ),
        )


def revised(store: ChatStore, conv: str, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """History messages with their edits and deletions applied (one BatchGetItem per page)."""
    if not messages:
        return messages
    wanted = {revision_mid(keys.mid(m["sender"], m["id"])) for m in messages}
    revisions: dict[str, dict[str, Any]] = {}
    key_list = [to_item({"conv": conv, "mid": mid}) for mid in sorted(wanted)]
    for start in range(0, len(key_list), 100):
        request: dict[str, Any] = {
            store.messages_table: {"Keys": key_list[start : start + 100], "ConsistentRead": True}
        }
        while request:
            response = store.db.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(store.messages_table, []):
                revision = current_fields(from_item(item))
                revisions[revision["mid"]] = revision
            request = response.get("UnprocessedKeys") or {}
    out = []
    for message in messages:
        change = revisions.get(revision_mid(keys.mid(message["sender"], message["id"])))
        if change is None:
            out.append(message)
        elif change.get("deleted"):
            body = {k: v for k, v in message.items() if k not in ("body", "edited")}
            out.append({**body, "deleted": change["deleted"]})
        else:
            out.append({**message, "body": change["body"], "edited": change["edited"]})
    return out
