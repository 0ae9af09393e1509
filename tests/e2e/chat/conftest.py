"""Fixtures for the chat backend's acceptance tests: real people on a real local stack.

Every client here is what a user runs: a Cognito identity (a guest, or a signed-in user) whose
temporary credentials sign a SigV4 WebSocket handshake, and an MQTT connection whose client id
is that identity id, as the IoT policies require. paho-mqtt is used (over the same presigned
WSS URL awsiotsdk builds) because a test must also be able to vanish without a DISCONNECT,
which awsiotsdk has no way to do. Each client records what it receives per topic, so a test
waits for what a user would see, with a deadline, instead of sleeping.
"""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.sigv4 import presign_url
from tests.support.cognito import guest_credentials, logins, new_user, unsigned_client
from tests.support.stack import InProcessStack, run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

TIMEOUT = 10.0
# Far longer than any test: a dropped connection must be noticed from the socket, not from a
# missed PINGREQ.
KEEPALIVE = 1200
SUBACK_FAILURE = 0x80

Message = dict[str, Any]


def unique(prefix: str) -> str:
    """A fresh room name or message id, so tests sharing a stack never see each other."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def inbox(client_id: str) -> str:
    return f"chat/in/{client_id}"


def room_topic(room: str) -> str:
    return f"chat/pub/{room}"


def signed_in_credentials(stack: InProcessStack) -> tuple[str, dict[str, Any]]:
    """A new user signs up, signs in and gets credentials for their identity (which attaches
    the user IoT policy to it)."""
    user = new_user(stack)
    identity = unsigned_client(stack, "cognito-identity")
    login = logins(stack, user.id_token)
    pool = stack.info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool, Logins=login)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=login)
    return identity_id, creds["Credentials"]


class ChatClient:
    """One MQTT connection of one identity, subscribed to its inbox, recording what arrives.

    Received messages are JSON-decoded and kept per topic in arrival order. The wait helpers
    evaluate their predicate under the lock that the network thread records under.
    """

    def __init__(
        self, stack: InProcessStack, client_id: str, creds: dict[str, Any], name: str | None = None
    ) -> None:
        self.stack = stack
        self.client_id = client_id
        self.creds = creds
        self.name = name
        self._cond = threading.Condition()
        self.received: dict[str, list[Message]] = {}
        self.raw: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[int]] = {}
        self.connacks: list[int] = []
        self.disconnects = 0
        port = stack.info["iot"]["wssPort"]
        host = "127.0.0.1"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            transport="websockets",
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.tls_set(ca_certs=stack.info["iot"]["caFile"])
        # paho sends "Host: <host>:<port>", so that is what the URL is signed for.
        url = presign_url(
            f"{host}:{port}",
            str(creds["AccessKeyId"]),
            str(creds["SecretKey"]),
            region=stack.info["region"],
            session_token=str(creds["SessionToken"]),
        )
        client.ws_set_options(path="/mqtt?" + urlsplit(url).query)
        client.max_inflight_messages_set(100)  # what the gateway allows, as AWS does
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        self.paho = client
        self._host, self._port = host, port

    # ------------------------------------------------------------------ network thread

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self.connacks.append(reason.value)
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        payload = bytes(message.payload)
        with self._cond:
            self.raw.append((message.topic, payload))
            try:
                body = json.loads(payload)
            except ValueError:
                body = {"undecodable": payload.decode("utf-8", "replace")}
            self.received.setdefault(message.topic, []).append(body)
            self._cond.notify_all()

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        with self._cond:
            self.subacks[mid] = [code.value for code in codes]
            self._cond.notify_all()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ waiting

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        """The first truthy ``predicate()`` (run under the lock), or fail naming ``what``."""
        with self._cond:
            value = self._cond.wait_for(predicate, timeout)
        if not value:
            raise AssertionError(f"{self.client_id}: no {what} within {timeout}s")
        return value

    def on(self, topic: str) -> list[Message]:
        """Everything received on ``topic`` so far, oldest first."""
        with self._cond:
            return list(self.received.get(topic, []))

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

    def connect(self, timeout: float = TIMEOUT) -> ChatClient:
        """CONNECT, then subscribe to the own inbox (the SUBACK is waited for)."""
        self.paho.connect(self._host, self._port, keepalive=KEEPALIVE)
        self.paho.loop_start()
        self.wait(lambda: self.connacks or self.disconnects, "CONNACK", timeout)
        if self.connacks[-1:] != [0]:
            raise AssertionError(f"{self.client_id}: CONNECT refused ({self.connacks})")
        assert self.subscribe(inbox(self.client_id)) == [1]
        return self

    def subscribe(self, topic_filter: str, timeout: float = TIMEOUT) -> list[int]:
        """SUBSCRIBE at QoS 1; the SUBACK's return codes (0x80: refused)."""
        rc, mid = self.paho.subscribe(topic_filter, 1)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, rc
        return self.wait(lambda: self.subacks.get(mid), f"SUBACK for {topic_filter}", timeout)

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
        body: Message = {"v": 1, "type": "message", "id": message_id, "room": room, "text": text}
        self.publish({**body, **extra})
        return message_id

    def send(self, kind: str, **fields: Any) -> None:
        self.publish({"v": 1, "type": kind, **fields})

    def request(self, kind: str, reply: str, key: str, value: str, **fields: Any) -> Message:
        """Send a command and return the next ``reply`` message about ``key`` = ``value`` on the
        inbox (replies carry no request id, so one request at a time per client)."""
        topic = inbox(self.client_id)
        before = len(self.on(topic))
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
        """The client ids the backend says are online in ``room``."""
        answer = self.request("who", "who", "room", room, room=room)
        return {entry["clientId"] for entry in answer["online"]}

    def disconnect(self) -> None:
        """A clean MQTT DISCONNECT."""
        before = self.disconnects
        self.paho.disconnect()
        self.wait(lambda: self.disconnects > before, "disconnect")
        self.paho.loop_stop()

    def drop(self) -> None:
        """The network goes away: the TCP connection is cut below TLS and WebSocket framing,
        with no MQTT DISCONNECT and no WebSocket close frame."""
        sock = self.paho.socket()
        assert sock is not None, "not connected"
        raw = getattr(sock, "_socket", sock)
        before = self.disconnects
        socket.socket.shutdown(raw, socket.SHUT_RDWR)
        self.wait(lambda: self.disconnects > before, "notice of the dropped socket")
        self.paho.loop_stop()

    def close(self) -> None:
        """Teardown: disconnect if still connected, never fail."""
        try:
            if self.paho.is_connected():
                self.paho.disconnect()
        finally:
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
        item = state_item(client.stack, f"client#{client.client_id}", "presence")
        return bool(item and item.get("connected", {}).get("BOOL"))

    wait_for(recorded, timeout, interval=0.02)


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
    ) -> ChatClient:
        """A new connected client: a new identity unless ``identity`` reuses one."""
        stack = self.stack
        client_id, creds = identity or (
            signed_in_credentials(stack) if signed_in else guest_credentials(stack)
        )
        client = ChatClient(stack, client_id, creds, name)
        self.clients.append(client)
        return client.connect()

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture(scope="package")
def chat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessStack]:
    """One stack with the project's own rules, Lambdas and policies, shared by every test in
    this folder that keeps to its own rooms and identities (and stopped once they are done)."""
    with run_stack_in_thread(stack_options(tmp_path_factory.mktemp("chat") / "state")) as stack:
        yield stack


@pytest.fixture
def people(chat_stack: InProcessStack) -> Iterator[People]:
    crowd = People(chat_stack)
    yield crowd
    crowd.close()


@pytest.fixture
def room() -> str:
    return unique("room")
