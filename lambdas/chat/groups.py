"""Private groups by consent (docs/protocol.md, "Groups by consent").

An invitation is a request kept apart from membership (``invite#<person>`` beside
``member#<person>`` in the group's partition, docs/data-model.md): everything that reaches a
group's people (messages, history, the member list, membership events) reads ``member#`` items
only, so an invitee learns nothing of the group but its name and who asked until they accept.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from .doors import SignedIn
from .names import clean_name
from .people import Directory
from .protocol import (
    MAX_GROUP_MEMBERS,
    VERSION,
    ProtocolError,
    inbox,
    ref_of,
    require_group,
)
from .publisher import Publisher
from .store import ChatStore, from_item, to_item


class Groups:
    """``create``, ``invite``, ``accept``, ``decline``, ``leave`` (of a group), ``remove``
    and ``rename``."""

    def __init__(
        self,
        store: ChatStore,
        publisher: Publisher,
        new_group_id: Callable[[], str] = lambda: f"g-{uuid.uuid4().hex}",
    ) -> None:
        self.store = store
        self.directory = Directory(store)
        self.publisher = publisher
        self.signed_in = SignedIn(store.db, store.state_table)
        self.new_group_id = new_group_id

    # ------------------------------------------------------------------ state

    def _key(self, group: str, sk: str) -> dict[str, Any]:
        return to_item({"pk": f"group#{group}", "sk": sk})

    def _invitation(self, group: str, person: str) -> dict[str, Any] | None:
        item = self.store.db.get_item(
            TableName=self.store.state_table,
            Key=self._key(group, f"invite#{person}"),
            ConsistentRead=True,
        ).get("Item")
        return from_item(item) if item else None

    def _put_invitation(self, group: str, name: str, person: str, by: str, ts: int) -> None:
        for item in (
            {
                "pk": f"group#{group}",
                "sk": f"invite#{person}",
                "person": person,
                "by": by,
                "ts": ts,
            },
            {
                "pk": f"person#{person}",
                "sk": f"invite#{group}",
                "group": group,
                "name": name,
                "by": by,
                "ts": ts,
            },
        ):
            self.store.db.put_item(TableName=self.store.state_table, Item=to_item(item))

    def _drop_invitation(self, group: str, person: str) -> bool:
        return self.store.delete_pair(
            {"pk": f"group#{group}", "sk": f"invite#{person}"},
            {"pk": f"person#{person}", "sk": f"invite#{group}"},
        )

    def _drop_member(self, group: str, person: str) -> bool:
        return self.store.delete_pair(
            {"pk": f"group#{group}", "sk": f"member#{person}"},
            {"pk": f"client#{person}", "sk": f"group#{group}"},
        )

    def pending(self, person: str, limit: int = 100) -> list[dict[str, Any]]:
        """The person's open invitations (shown again on ``hello``)."""
        response = self.store.db.query(
            TableName=self.store.state_table,
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues=to_item({":p": f"person#{person}", ":s": "invite#"}),
            ConsistentRead=True,
            Limit=limit,
        )
        return [from_item(item) for item in response.get("Items", [])]

    def _meta(self, group: str, ref: str | None) -> dict[str, Any]:
        meta = self.store.group_meta(group)
        if meta is None:
            raise ProtocolError("NOT_FOUND", "no such group", ref)
        return meta

    def _member_meta(self, group: str, person: str, ref: str | None) -> dict[str, Any]:
        meta = self._meta(group, ref)
        if not self.store.is_group_member(group, person):
            raise ProtocolError("NOT_A_MEMBER", "only members can do that in a group", ref)
        return meta

    def _owner_meta(self, group: str, person: str, ref: str | None) -> dict[str, Any]:
        meta = self._meta(group, ref)
        if meta.get("owner") != person:
            raise ProtocolError("NOT_OWNER", "only the group's creator can do that", ref)
        return meta

    # ------------------------------------------------------------------ telling people

    def _tell_members(self, group: str, body: dict[str, Any], also: Iterable[str] = ()) -> None:
        for person in dict.fromkeys([*self.store.group_members(group), *also]):
            self.publisher.publish(inbox(person), body)

    def _membership(
        self, group: str, event: str, person: str, ts: int, by: str | None = None, **extra: Any
    ) -> dict[str, Any]:
        profiles = self.directory.profiles([p for p in (person, by) if p])
        body: dict[str, Any] = {
            "v": VERSION,
            "type": "membership",
            "groupId": group,
            "event": event,
            "person": profiles[person],
            "ts": ts,
        }
        if by is not None:
            body["by"] = profiles[by]
        body.update(extra)
        return body

    def announce(self, group: str) -> None:
        """The ``group`` (name, owner, member profiles) to every member, and to no one else."""
        meta = self.store.group_meta(group)
        assert meta is not None
        members = self.store.group_members(group)
        profiles = self.directory.profiles(members)
        body = {
            "v": VERSION,
            "type": "group",
            "groupId": group,
            "name": meta["name"],
            "owner": meta["owner"],
            "members": [profiles[m] for m in members],
        }
        for member in members:
            self.publisher.publish(inbox(member), body)

    def _invite(self, group: str, name: str, person: str, by: str, ts: int) -> None:
        self._put_invitation(group, name, person, by, ts)
        self.publisher.publish(
            inbox(person),
            {
                "v": VERSION,
                "type": "invitation",
                "groupId": group,
                "name": name,
                "by": self.directory.profile(by),
                "ts": ts,
            },
        )

    # ------------------------------------------------------------------ commands

    def create(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        if "name" not in request:
            raise ProtocolError("INVALID_NAME", "a group needs a name", ref)
        name = clean_name(request["name"], ref)
        invited = request.get("members", [])
        if not isinstance(invited, list):
            raise ProtocolError("INVALID_REQUEST", "members must be a list of handles", ref)
        if len(invited) >= MAX_GROUP_MEMBERS:
            raise ProtocolError(
                "LIMIT_EXCEEDED", f"a group has at most {MAX_GROUP_MEMBERS} members", ref
            )
        people = [self.directory.resolve(m, ref, "members") for m in invited]
        for person in people:
            self.signed_in.require(person, ref, "members")  # never a guest (doors.py)
        # With an id, a retried or redelivered create makes the same group, not a second one.
        group = (
            "g-" + hashlib.sha256(f"{sender}|{ref}".encode()).hexdigest()[:32]
            if ref
            else self.new_group_id()
        )
        if not self.store.create_group(group, name, sender, ts):
            meta = self.store.group_meta(group)
            if meta is None or meta.get("owner") != sender:
                raise ProtocolError("INVALID_REQUEST", "that group id is taken", ref)
        self.store.add_group_members(group, name, [sender], sender, ts)
        self.announce(group)
        for person in dict.fromkeys(people):
            if person != sender and not self.store.is_group_member(group, person):
                self._invite(group, name, person, sender, ts)

    def invite(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        group = require_group(request)
        person = self.directory.resolve(request.get("member"), ref, "member")
        self.signed_in.require(person, ref, "member")  # never a guest (doors.py)
        meta = self._member_meta(group, sender, ref)
        if self.store.is_group_member(group, person):
            return  # already in: nothing to ask
        if len(self.store.group_members(group)) >= MAX_GROUP_MEMBERS:
            raise ProtocolError(
                "LIMIT_EXCEEDED", f"a group has at most {MAX_GROUP_MEMBERS} members", ref
            )
        self._invite(group, meta["name"], person, sender, ts)
        self._tell_members(group, self._membership(group, "invited", person, ts, by=sender))

    def accept(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        group = require_group(request)
        invitation = self._invitation(group, sender)
        if invitation is None:
            if self.store.is_group_member(group, sender):
                self.announce(group)  # a repeated accept: the same answer again
                return
            raise ProtocolError("NOT_INVITED", "there is no invitation to this group", ref)
        meta = self._meta(group, ref)
        if len(self.store.group_members(group)) >= MAX_GROUP_MEMBERS:
            raise ProtocolError(
                "LIMIT_EXCEEDED", f"a group has at most {MAX_GROUP_MEMBERS} members", ref
            )
        self.store.add_group_members(group, meta["name"], [sender], invitation["by"], ts)
        self._drop_invitation(group, sender)
        self.announce(group)
        self._tell_members(group, self._membership(group, "joined", sender, ts))

    def decline(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        group = require_group(request)
        if not self._drop_invitation(group, sender):
            raise ProtocolError("NOT_INVITED", "there is no invitation to this group", ref)
        self._tell_members(group, self._membership(group, "declined", sender, ts))

    def leave(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        group = require_group(request)
        meta = self._member_meta(group, sender, ref)
        if meta.get("owner") == sender:
            raise ProtocolError("INVALID_REQUEST", "the creator cannot leave the group", ref)
        body = self._membership(group, "left", sender, ts)
        self._drop_member(group, sender)
        self._tell_members(group, body, also=[sender])

    def remove(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        group = require_group(request)
        person = self.directory.resolve(request.get("member"), ref, "member")
        self._owner_meta(group, sender, ref)
        if person == sender:
            raise ProtocolError("INVALID_REQUEST", "the creator cannot remove themselves", ref)
        body = self._membership(group, "removed", person, ts, by=sender)
        was_member = self._drop_member(group, person)
        was_invited = self._drop_invitation(group, person)
        if not (was_member or was_invited):
            raise ProtocolError("NOT_A_MEMBER", "that person is not in the group", ref)
        self._tell_members(group, body, also=[person])  # an invitee learns it was withdrawn
        if was_member:
            self.announce(group)

    def rename(self, request: dict[str, Any], sender: str, ts: int) -> None:
        ref = ref_of(request)
        group = require_group(request)
        if "name" not in request:
            raise ProtocolError("INVALID_NAME", "a group needs a name", ref)
        name = clean_name(request["name"], ref)
        self._owner_meta(group, sender, ref)
        self.store.db.update_item(
            TableName=self.store.state_table,
            Key=self._key(group, "meta"),
            UpdateExpression="SET #n = :n",
            ExpressionAttributeNames={"#n": "name"},
            ExpressionAttributeValues=to_item({":n": name}),
        )
        self.announce(group)
        self._tell_members(group, self._membership(group, "renamed", sender, ts, name=name))
