"""Fixtures for the chat backend's acceptance tests: real people on a real local stack.

Every client here is what a user runs: a Cognito identity (a guest, or a signed-in user) and
its MQTT connection over a SigV4 WebSocket, recording what it receives
(:class:`tests.support.wss_client.RecordingClient`), with the chat protocol's requests on top,
so a test waits for what a user would see, with a deadline, instead of sleeping.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from lambdas.chat.doors import is_private
from lambdas.chat.sessions import person_of, session_client_id
from tests.support.cognito import guest_credentials, logins, new_user, unsigned_client
from tests.support.stack import InProcessStack, fresh_stack
from tests.support.waiting import wait_for
from tests.support.wss_client import Message, RecordingClient, inbox

TIMEOUT = 10.0
SUBACK_FAILURE = 0x80


def unique(prefix: str) -> str:
    """A fresh room name or message id, so tests sharing a stack never see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def room_topic(room: str) -> str:
    return f"chat/pub/{room}"


class ChatClient(RecordingClient):
    """One MQTT connection (a session) of one identity, subscribed to its session's replies
    and its person's inbox, recording what arrives, with the chat protocol's requests (join,
    history, who) on top.

    The wait helpers evaluate their predicate under the lock that the network thread records
    under; a missed deadline fails the test.
    """

    timeout = TIMEOUT

    def __init__(
        self, stack: InProcessStack, client_id: str, creds: dict[str, Any], name: str | None = None
    ) -> None:
        super().__init__(stack.info, client_id, creds)
        self.stack = stack
        self.name = name
        self.person = person_of(client_id)

    def connect(self, timeout: float | None = None) -> ChatClient:
        """CONNECT and subscribe to the session's replies, then to the person's inbox."""
        super().connect(timeout)
        if self.person != self.client_id and self.subscribe(inbox(self.person)) != [1]:
            raise self.refusal(f"{self.client_id}: SUBSCRIBE to the person's inbox refused")
        return self

    @property
    def person_inbox(self) -> list[Message]:
        """What arrived on the person's inbox, shared by all their sessions."""
        return self.on(inbox(self.person))

    # ------------------------------------------------------------------ waiting

    @property
    def inbox(self) -> list[Message]:
        return self.on(inbox(self.client_id))

    def of_type(self, topic: str, kind: str) -> list[Message]:
        return [m for m in self.on(topic) if m.get("type") == kind]

    def wait_for_message(
        self,
        topic: str,
        match: Callable[[Message], bool],
        what: str,
        timeout: float = TIMEOUT,
        after: int = 0,
    ) -> Message:
        """The first message on ``topic`` (from index ``after`` on) for which ``match`` holds."""

        def found() -> Message | None:
            for body in self.received.get(topic, [])[after:]:
                if match(body):
                    return body
            return None

        return self.wait(found, f"{what} on {topic}", timeout)

    def wait_count(
        self, topic: str, match: Callable[[Message], bool], count: int, timeout: float = TIMEOUT
    ) -> list[Message]:
        """Wait until at least ``count`` messages on ``topic`` match; returns them all."""

        def enough() -> list[Message] | None:
            hits = [m for m in self.received.get(topic, []) if match(m)]
            return hits if len(hits) >= count else None

        return self.wait(enough, f"{count} matching messages", timeout)

    def wait_error(self, code: str, ref: str | None = None, timeout: float = TIMEOUT) -> Message:
        return self.wait_for_message(
            inbox(self.client_id),
            lambda m: m.get("type") == "error" and m.get("code") == code and m.get("ref") == ref,
            f"error {code} (ref {ref})",
            timeout,
        )

    def errors(self) -> list[Message]:
        return self.of_type(inbox(self.client_id), "error")

    # ------------------------------------------------------------------ actions

    def publish(self, payload: Any, topic: str = "chat/out") -> None:
        """A QoS 1 PUBLISH of ``payload`` (bytes as they are, anything else as JSON), waited
        for until the gateway acknowledged it."""
        data = payload if isinstance(payload, bytes) else json.dumps(payload)
        info = self.paho.publish(topic, data, qos=1)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS, info.rc
        info.wait_for_publish(TIMEOUT)
        assert info.is_published(), f"{self.client_id}: no PUBACK for a message to {topic}"

    def publish_many(self, payloads: list[Message], timeout: float = 30.0) -> None:
        """A burst of QoS 1 PUBLISHes: all queued at once, then every PUBACK waited for."""
        infos = [self.paho.publish("chat/out", json.dumps(p), qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout)
            assert info.is_published(), f"{self.client_id}: a burst message was not acknowledged"

    def say(self, room: str, text: str, message_id: str | None = None, **extra: Any) -> str:
        """A room message; returns its id."""
        message_id = message_id or unique("m")
        body: Message = {"v": 1, "type": "message", "id": message_id, "room": room, "body": text}
        self.publish({**body, **extra})
        return message_id

    def send(self, kind: str, **fields: Any) -> None:
        self.publish({"v": 1, "type": kind, **fields})

    def send_private(self, kind: str, **fields: Any) -> None:
        """A direct or group command, through the signed-in door (docs/protocol.md)."""
        self.publish({"v": 1, "type": kind, **fields}, topic="chat/private")

    def request(self, kind: str, reply: str, key: str, value: str, **fields: Any) -> Message:
        """Send a command and return the next ``reply`` message about ``key`` = ``value`` on the
        inbox (replies carry no request id, so one request at a time per client)."""
        topic = inbox(self.client_id)
        before = len(self.on(topic))
        # Direct and group requests go through the signed-in door.
        if is_private({"type": kind, **fields}):
            self.send_private(kind, **fields)
        else:
            self.send(kind, **fields)
        return self.wait_for_message(
            topic,
            lambda m: m.get("type") == reply and m.get(key) == value,
            f"{reply} reply to {kind}",
            after=before,
        )

    def join(self, room: str) -> Message:
        """Join a room (with this client's name, if any); returns the history page it sends."""
        extra = {"name": self.name} if self.name else {}
        return self.request("join", "history", "room", room, room=room, **extra)

    def history(self, key: str, value: str, **fields: Any) -> Message:
        """One history page: ``key`` is ``room``, ``with`` or ``group``."""
        return self.request("history", "history", key, value, **{key: value, **fields})

    def who(self, room: str) -> set[str]:
        """The people the backend says are online in ``room`` (one the asker has joined)."""
        answer = self.request("who", "who", "room", room, room=room)
        return {entry["person"] for entry in answer["online"]}

    def disconnect(self) -> None:
        """A clean MQTT DISCONNECT."""
        before = self.disconnects
        self.paho.disconnect()
        self.wait(lambda: self.disconnects > before, "disconnect")
        self.paho.loop_stop()


def state_item(stack: InProcessStack, pk: str, sk: str) -> dict[str, Any] | None:
    """One item of the state table, read with the stack's admin key (docs/data-model.md)."""
    item = stack.client("dynamodb").get_item(
        TableName=f"{stack.info['stackName']}-state",
        Key={"pk": {"S": pk}, "sk": {"S": sk}},
        ConsistentRead=True,
    )
    return item.get("Item")


def wait_connection_recorded(client: ChatClient, timeout: float = TIMEOUT) -> None:
    """Wait until the presence Lambda has recorded ``client``'s first connection.

    A join that races the connection's lifecycle event can leave the member offline (see
    ``test_presence.test_joining_right_after_connecting_shows_online``); tests that are about
    something else join only once the connection is on record.
    """

    def recorded() -> bool:
        item = state_item(client.stack, f"client#{client.person}", "presence")
        session = (item or {}).get("sessions", {}).get("M", {}).get(client.client_id, {})
        return bool(session.get("M", {}).get("c", {}).get("BOOL"))

    wait_for(recorded, timeout, interval=0.02)


def signed_in_identity(stack: InProcessStack) -> tuple[str, dict[str, Any], str]:
    """A new user with a handle signs in: their identity id, its credentials (the first ones
    attach the user IoT policy) and their ID token, for ``hello``."""
    user = new_user(stack, handle=f"u-{uuid.uuid4().hex[:12]}")
    login = logins(stack, user.id_token)
    identity = unsigned_client(stack, "cognito-identity")
    pool = stack.info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool, Logins=login)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=login)
    return identity_id, creds["Credentials"], user.id_token


def say_hello(client: ChatClient, token: str) -> Message:
    """``hello`` with the ID token through the signed-in door, as a signed-in client starts:
    the person is then someone private things may be sent to. Returns the profile."""
    topic = inbox(client.client_id)
    before = len(client.on(topic))
    client.send_private("hello", token=token)
    return client.wait_for_message(
        topic, lambda m: m.get("type") == "profile", "the profile", after=before
    )


class People:
    """Makes connected chat clients on a stack and closes them all at the end of a test."""

    def __init__(self, stack: InProcessStack) -> None:
        self.stack = stack
        self.clients: list[ChatClient] = []

    def connect(
        self,
        name: str | None = None,
        *,
        signed_in: bool = False,
        identity: tuple[str, dict[str, Any]] | None = None,
        session: str | None = None,
        token: str | None = None,
    ) -> ChatClient:
        """A new connected client: a new identity unless ``identity`` reuses one; with
        ``session``, it connects as that session of the identity (else as the bare id). A new
        signed-in person says ``hello`` with their token, as do those given a ``token``."""
        stack = self.stack
        if identity is None and signed_in:
            identity_id, creds, token = signed_in_identity(stack)
        else:
            identity_id, creds = identity or guest_credentials(stack)
        client_id = session_client_id(identity_id, session) if session else identity_id
        client = ChatClient(stack, client_id, creds, name)
        self.clients.append(client)
        client.connect()
        if token is not None:
            say_hello(client, token)
        return client

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(scope="package")
def chat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    """One stack with the project's own rules, Lambdas and policies, shared by every test in
    this folder that keeps to its own rooms and identities (and stopped once they are done)."""
    with fresh_stack(tmp_path_factory, "chat") as stack:
        yield stack


def people_on(stack: InProcessStack) -> Iterator[People]:
    """The body of a ``people`` fixture: the clients made on ``stack`` are closed after the test."""
    crowd = People(stack)
    yield crowd
    crowd.close()


@pytest.fixture
def people(chat_stack: InProcessStack) -> Iterator[People]:
    yield from people_on(chat_stack)


@pytest.fixture
def room() -> str:
    return unique("room")
