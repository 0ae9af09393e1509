"""Presence as the room sees it: online when a member connects, offline when they go (cleanly
or because the network dropped), and no news at all when a second connection with the same
client id takes over (tests/e2e/chat/test_sessions.py has one person in several sessions)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.e2e.chat.conftest import (
    TIMEOUT,
    ChatClient,
    People,
    room_topic,
    state_item,
    unique,
    wait_connection_recorded,
)
from tests.support.waiting import wait_for
from tests.support.wss_client import Message

pytestmark = pytest.mark.timeout(60)

JOIN_RACE_ATTEMPTS = 20
JOIN_RACE_TIMEOUT = 2.0


class RoomWatcher:
    """A member of a room subscribed to it, reading its presence updates."""

    def __init__(self, client: ChatClient, room: str) -> None:
        self.client = client
        self.room = room
        client.join(room)
        assert client.subscribe(room_topic(room)) == [1]

    def who(self) -> set[str]:
        """Who else the backend says is online in the room (``who`` is for members)."""
        return self.client.who(self.room) - {self.client.person}

    def updates(self, client_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.client.of_type(room_topic(self.room), "presence")
            if m["clientId"] == client_id
        ]

    def seen(self, member: ChatClient) -> int:
        """How many updates about ``member`` arrived so far: take it before an action."""
        return len(self.updates(member.client_id))

    def next_update(self, member: ChatClient, status: str, since: int) -> dict[str, Any]:
        """The first presence update for ``member`` with ``status`` after the first ``since``."""

        def arrived() -> dict[str, Any] | None:
            for update in self.updates(member.client_id)[since:]:
                if update["status"] == status:
                    return update
            return None

        return self.client.wait(arrived, f"presence {status} of {member.client_id}")


def session_version(client: ChatClient) -> int:
    """The lifecycle versionNumber the presence Lambda last applied for ``client``'s client id
    (-1 before any): the state item of its person (docs/data-model.md)."""
    item = state_item(client.stack, f"client#{client.person}", "presence") or {}
    entry = item.get("sessions", {}).get("M", {}).get(client.client_id, {}).get("M", {})
    return int(entry.get("v", {}).get("N", -1))


def _joined(people: People, watcher: RoomWatcher, name: str) -> ChatClient:
    """A member who has joined the room while connected: the room sees them come online."""
    member = people.connect(name)
    wait_connection_recorded(member)
    member.join(watcher.room)
    update = watcher.client.wait(
        lambda: watcher.updates(member.client_id), f"presence of {name} after the join"
    )[0]
    assert update["status"] == "online"
    assert update["person"] == member.person
    assert update["room"] == watcher.room
    assert "reason" not in update
    return member


def test_disconnect_and_reconnect_show_offline_then_online(people: People, room: str) -> None:
    watcher = RoomWatcher(people.connect("Watcher"), room)
    ada = _joined(people, watcher, "Ada")
    assert watcher.who() == {ada.client_id}

    since = watcher.seen(ada)
    ada.disconnect()
    offline = watcher.next_update(ada, "offline", since)
    assert offline["reason"] == "disconnected"
    assert watcher.who() == set()

    # Coming back later (still a member): the room sees them online again.
    since = watcher.seen(ada)
    ada_again = people.connect("Ada", identity=(ada.client_id, ada.creds))
    online = watcher.next_update(ada_again, "online", since)
    assert online["ts"] >= offline["ts"]
    assert watcher.who() == {ada.client_id}


def test_a_dropped_connection_shows_offline(people: People, room: str) -> None:
    watcher = RoomWatcher(people.connect("Watcher"), room)
    bob = _joined(people, watcher, "Bob")
    carol = _joined(people, watcher, "Carol")
    assert watcher.who() == {bob.client_id, carol.client_id}

    since = watcher.seen(bob)
    bob.drop()  # no DISCONNECT: the gateway only sees the socket go
    offline = watcher.next_update(bob, "offline", since)
    assert offline["reason"] == "disconnected"
    assert watcher.who() == {carol.client_id}
    # Carol's own updates stay online (the join and her connection may both have said so).
    assert {u["status"] for u in watcher.updates(carol.client_id)} == {"online"}


def test_a_takeover_keeps_the_member_online(people: People, room: str) -> None:
    watcher = RoomWatcher(people.connect("Watcher"), room)
    dan = _joined(people, watcher, "Dan")

    # The same identity connects again (a second tab, a phone that reconnected before the old
    # connection timed out): the gateway closes the old connection.
    since = watcher.seen(dan)
    version = session_version(dan)
    second = people.connect("Dan", identity=(dan.client_id, dan.creds))
    dan.wait(lambda: dan.disconnects, "the takeover closing the first connection")
    wait_for(lambda: session_version(second) > version, TIMEOUT, interval=0.02)
    assert watcher.who() == {dan.client_id}
    # The session carried on: the room was told nothing.
    assert watcher.updates(dan.client_id)[since:] == []

    # Messages still reach the new connection.
    assert second.subscribe(room_topic(room)) == [1]
    note = watcher.client.say(room, "still there?")
    second.wait_for_message(room_topic(room), lambda m: m.get("id") == note, "the note")

    since = watcher.seen(second)
    second.disconnect()
    assert watcher.next_update(second, "offline", since)["reason"] == "disconnected"
    assert watcher.who() == set()


def test_a_takeover_announces_no_offline(people: People, room: str) -> None:
    watcher = RoomWatcher(people.connect("Watcher"), room)
    erin = _joined(people, watcher, "Erin")
    since = watcher.seen(erin)
    version = session_version(erin)
    second = people.connect("Erin", identity=(erin.client_id, erin.creds))
    wait_for(lambda: session_version(second) > version, TIMEOUT, interval=0.02)
    erin.wait(lambda: erin.disconnects, "the takeover closing the first connection")
    # The member never left: the room is told nothing, neither offline nor online again.
    assert watcher.updates(erin.client_id)[since:] == []
    assert watcher.who() == {erin.person}


def test_joining_right_after_connecting_shows_online(people: People) -> None:
    watcher = people.connect("Watcher")
    for attempt in range(JOIN_RACE_ATTEMPTS):
        room = unique("race")
        watcher.join(room)
        assert watcher.subscribe(room_topic(room)) == [1]
        member = people.connect(f"member {attempt}")
        member.join(room)  # as a client does: join the rooms it remembers as soon as it is up

        def online(r: str = room, m: ChatClient = member) -> list[Message]:
            updates = watcher.of_type(room_topic(r), "presence")
            return [u for u in updates if u["clientId"] == m.client_id]

        watcher.wait(
            online,
            f"presence online for attempt {attempt}",
            timeout=JOIN_RACE_TIMEOUT,
        )
        assert member.client_id in watcher.who(room)
        member.close()
