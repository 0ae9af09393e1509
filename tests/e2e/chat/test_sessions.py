"""One person, many sessions at once (docs/protocol.md, "People and sessions"): an awsiotsdk
client, a paho client and short sessions that come and go, all of one signed-in identity. None
takes another over, each gets the room and the person's inbox, and the room sees one person,
online until the last session is gone."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from awscrt import mqtt

from tests.e2e.chat.conftest import (
    TIMEOUT,
    ChatClient,
    People,
    room_topic,
    signed_in_identity,
    unique,
    wait_connection_recorded,
)
from tests.support.cognito import wss_connection
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for
from tests.support.wss_client import inbox

pytestmark = pytest.mark.timeout(120)

SHORT_SESSIONS = 4


def session_part(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


class SdkSession:
    """An awsiotsdk (awscrt) MQTT connection of one session, recording what arrives."""

    def __init__(self, stack: InProcessStack, client_id: str, creds: dict[str, Any]) -> None:
        self.client_id = client_id
        self.connection = wss_connection(stack, client_id, creds)
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def _on_message(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        with self._lock:
            self.received.append((topic, json.loads(payload)))

    def start(self, *topics: str) -> SdkSession:
        self.connection.connect().result(TIMEOUT)
        for topic in topics:
            future, _ = self.connection.subscribe(
                topic, mqtt.QoS.AT_LEAST_ONCE, callback=self._on_message
            )
            assert future.result(TIMEOUT)["qos"] == mqtt.QoS.AT_LEAST_ONCE, topic
        return self

    def got(self, topic: str, kind: str, key: str, value: Any) -> bool:
        with self._lock:
            return any(
                t == topic and body.get("type") == kind and body.get(key) == value
                for t, body in self.received
            )

    def stop(self) -> None:
        self.connection.disconnect().result(TIMEOUT)


def presence_of(watcher: ChatClient, room: str, person: str) -> list[str]:
    return [
        m["status"]
        for m in watcher.of_type(room_topic(room), "presence")
        if m.get("person") == person
    ]


def disconnected(stack: InProcessStack, client_id: str) -> list[Any]:
    """The gateway's disconnected lifecycle events for one client id."""
    return stack.taps_on(f"$aws/events/presence/disconnected/{client_id}")


def test_one_person_holds_three_kinds_of_session_at_once(
    people: People, chat_stack: InProcessStack, room: str
) -> None:
    bob = people.connect(signed_in=True, session=session_part("bob"))
    wait_connection_recorded(bob)
    bob.join(room)
    assert bob.subscribe(room_topic(room)) == [1]

    alice_id, creds, token = signed_in_identity(chat_stack)
    identity = (alice_id, creds)
    tab = people.connect(identity=identity, session=session_part("paho"), token=token)
    wait_connection_recorded(tab)
    tab.join(room)
    assert tab.subscribe(room_topic(room)) == [1]
    wait_for(lambda: presence_of(bob, room, alice_id) == ["online"], TIMEOUT)

    sdk = SdkSession(chat_stack, f"{alice_id}_{session_part('sdk')}", creds)
    sdk.start(inbox(alice_id), inbox(sdk.client_id), room_topic(room))
    try:
        # Short sessions come and go beside the two long ones: each says something.
        said = []
        for _ in range(SHORT_SESSIONS):
            short = people.connect(identity=identity, session=session_part("send"))
            said.append(short.say(room, "from a short session"))
            short.disconnect()
        for message_id in said:
            bob.wait_for_message(room_topic(room), lambda m, i=message_id: m.get("id") == i, "m")

        # The room reaches every session, and so does the person's inbox.
        hello = bob.say(room, "hello Alice's every tab")
        direct = unique("d")
        bob.send_private("message", id=direct, recipient=alice_id, body="psst")
        for topic, key, value in (
            (room_topic(room), "id", hello),
            (inbox(alice_id), "id", direct),
        ):
            tab.wait_for_message(topic, lambda m, k=key, v=value: m.get(k) == v, "delivery")
            wait_for(lambda t=topic, v=value: sdk.got(t, "message", "id", v), TIMEOUT)
        # Stored and delivered as the person, not as any one session.
        senders = {m["sender"] for m in bob.on(room_topic(room)) if m.get("id") in said}
        assert senders == {alice_id}

        # Nobody was taken over, and the room saw one person, online throughout.
        assert tab.disconnects == 0
        assert disconnected(chat_stack, tab.client_id) == []
        assert disconnected(chat_stack, sdk.client_id) == []
        assert presence_of(bob, room, alice_id) == ["online"]
        assert bob.who(room) == {alice_id, bob.person}
    finally:
        sdk.stop()

    # One long session gone: still online. The last one gone: offline.
    wait_for(lambda: disconnected(chat_stack, sdk.client_id), TIMEOUT)
    assert bob.who(room) == {alice_id, bob.person}
    tab.disconnect()
    wait_for(lambda: presence_of(bob, room, alice_id) == ["online", "offline"], TIMEOUT)
    assert bob.who(room) == {bob.person}


def test_a_session_hears_its_own_answers_and_the_others_do_not(
    people: People, chat_stack: InProcessStack, room: str
) -> None:
    alice_id, creds, _ = signed_in_identity(chat_stack)
    identity = (alice_id, creds)
    first = people.connect(identity=identity, session=session_part("one"))
    second = people.connect(identity=identity, session=session_part("two"))
    first.join(room)  # the history page answers the joining session only
    bad = unique("bad")
    second.send("join", id=bad, room="not a room")
    second.wait_error("INVALID_ROOM", bad)
    assert [m["type"] for m in first.inbox] == ["history"]
    assert not [m for m in second.inbox if m.get("type") == "history"]
