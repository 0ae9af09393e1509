"""What a person belongs to: the rooms they joined and the groups they are a member of, read
for the answer to ``hello`` so that any new session (another browser, a terminal) starts
with them (docs/protocol.md, "Names and handles", the ``hello`` answer).

Membership is the person's, not a session's: both reads use the ``client#<person>`` items
(docs/data-model.md). A group's name is read from its ``meta`` item, which a rename
updates, not from the copy on the person's item.
"""

from __future__ import annotations

from typing import Any

from .protocol import MAX_ROOMS_PER_CLIENT
from .store import ChatStore, from_item, to_item

# Groups have no per-person cap in the protocol; the answer carries at most this many (one
# BatchGetItem of their names), which keeps it far below the 128 KiB payload limit.
MAX_GROUPS_IN_HELLO = 100


class Belongings:
    """Reads a person's rooms and groups from the state table."""

    def __init__(self, store: ChatStore) -> None:
        self.db = store.db
        self.table = store.state_table

    def _sort_keys(self, person: str, prefix: str, limit: int) -> list[dict[str, Any]]:
        response = self.db.query(
            TableName=self.table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues=to_item({":p": f"client#{person}", ":s": prefix}),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(item) for item in response.get("Items", [])]

    def rooms(self, person: str) -> list[str]:
        """The rooms the person joined (at most the 50 a person may join), by name."""
        items = self._sort_keys(person, "room#", MAX_ROOMS_PER_CLIENT)
        return [str(item["room"]) for item in items]

    def groups(self, person: str) -> list[dict[str, Any]]:
        """``{"groupId", "name", "owner"}`` of each group the person is a member of (never
        one they are only invited to: invitations are ``invite#`` items elsewhere)."""
        ids = [str(i["group"]) for i in self._sort_keys(person, "group#", MAX_GROUPS_IN_HELLO)]
        if not ids:
            return []
        metas: dict[str, dict[str, Any]] = {}
        keys = [to_item({"pk": f"group#{g}", "sk": "meta"}) for g in ids]
        request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
        while request:
            response = self.db.batch_get_item(RequestItems=request)
            for item in response.get("Responses", {}).get(self.table, []):
                meta = from_item(item)
                metas[str(meta["pk"]).removeprefix("group#")] = meta
            request = response.get("UnprocessedKeys") or {}
        return [
            {"groupId": g, "name": str(metas[g].get("name", "")), "owner": metas[g].get("owner")}
            for g in ids
            if g in metas  # a group whose meta is gone is no longer shown
        ]
