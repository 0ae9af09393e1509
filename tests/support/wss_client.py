"""A chat participant's MQTT connection: paho-mqtt over a SigV4-signed WebSocket, recording
everything it receives.

This is what a user's client is: a Cognito identity whose temporary credentials sign the
WebSocket handshake (the same presigned URL awsiotsdk builds), and a client id equal to that
identity id, as the IoT policies require. paho-mqtt is used because a test or a fault
scenario must also be able to vanish without a DISCONNECT (:meth:`RecordingClient.drop`),
which awsiotsdk cannot do. Messages are JSON-decoded and kept per topic, QoS 1 acknowledgements
per message id, all under one condition variable, so callers wait for what a user would see
(with a deadline) instead of sleeping. The chat scenarios (``tests/e2e/chat``) and the
reliability benchmark both build on this class.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from typing import Any, Self
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.sigv4 import presign_url

# Far longer than any test: a dropped connection must be noticed from the socket, not from a
# missed PINGREQ.
KEEPALIVE = 1200
HOST = "127.0.0.1"

Message = dict[str, Any]
Identity = tuple[str, dict[str, Any]]  # (identity id, Cognito credentials)


def sign_websocket(
    client: mqtt.Client,
    ca_file: str,
    host_port: str,
    access_key: str,
    secret: str,
    *,
    region: str = "us-east-1",
    session_token: str | None = None,
) -> None:
    """Point a paho WebSocket client at the gateway's wss listener with a SigV4 URL: TLS with
    the stack's CA, the path presigned for ``host_port`` (paho sends ``Host: <host>:<port>``,
    so that is what the signature must cover)."""
    client.tls_set(ca_certs=ca_file)
    url = presign_url(host_port, access_key, secret, region=region, session_token=session_token)
    client.ws_set_options(path="/mqtt?" + urlsplit(url).query)


def inbox(client_id: str) -> str:
    return f"chat/in/{client_id}"


def cut_connection(client: mqtt.Client) -> bool:
    """Shut the TCP connection down below TLS and WebSocket framing: the peer sees it vanish,
    with no MQTT DISCONNECT and no WebSocket close frame. False when there is no socket."""
    sock = client.socket()
    if sock is None:
        return False
    raw = getattr(sock, "_socket", sock)  # paho's WebSocket wrapper keeps the TLS socket
    if isinstance(raw, socket.socket):
        socket.socket.shutdown(raw, socket.SHUT_RDWR)
    return True


class RecordingClient:
    """One MQTT connection of one identity over SigV4 WebSocket, recording what arrives.

    ``info`` is the stack file's content. Subclasses choose what a missed deadline raises
    (:attr:`failure`) and what a refused CONNECT or SUBSCRIBE raises (:attr:`refusal`).
    """

    failure: type[Exception] = AssertionError
    refusal: type[Exception] = AssertionError
    timeout = 10.0

    def __init__(
        self,
        info: dict[str, Any],
        client_id: str,
        creds: dict[str, Any],
        *,
        clean_session: bool = True,
        mqtt5: bool = False,
    ) -> None:
        self.info = info
        self.client_id = client_id
        self.creds = creds
        self.inbox_topic = inbox(client_id)
        self._cond = threading.Condition()
        self.received: dict[str, list[Message]] = {}
        self.raw: list[tuple[str, bytes]] = []
        self.subacks: dict[int, list[int]] = {}
        self.connacks: list[tuple[int, bool]] = []  # (reason code, session present)
        self.disconnects = 0
        self.acked: set[str] = set()  # ids of QoS 1 messages the gateway acknowledged
        self.refused: dict[str, int] = {}  # id -> MQTT 5 PUBACK reason code
        self._mids: dict[int, str] = {}
        self._early: dict[int, int] = {}
        self.port = int(info["iot"]["wssPort"])
        kwargs: dict[str, Any] = {} if mqtt5 else {"clean_session": clean_session}
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            transport="websockets",
            reconnect_on_failure=False,
            **kwargs,
        )
        sign_websocket(
            client,
            info["iot"]["caFile"],
            f"{HOST}:{self.port}",
            str(creds["AccessKeyId"]),
            str(creds["SecretKey"]),
            region=info["region"],
            session_token=str(creds["SessionToken"]),
        )
        client.max_inflight_messages_set(100)  # what the gateway allows, as AWS does
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.paho = client

    # ------------------------------------------------------------------ network thread

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self.connacks.append((reason.value, bool(flags.session_present)))
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

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        code = getattr(reason, "value", 0)
        with self._cond:
            message_id = self._mids.pop(mid, None)
            if message_id is None:
                self._early[mid] = code  # acknowledged before send() recorded the mid
            else:
                self._record_ack(message_id, code)
            self._cond.notify_all()

    def _record_ack(self, message_id: str, code: int) -> None:
        if code < 0x80:
            self.acked.add(message_id)
        else:
            self.refused[message_id] = code

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any
    ) -> None:
        with self._cond:
            self.disconnects += 1
            self._cond.notify_all()

    # ------------------------------------------------------------------ reading

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float | None = None) -> Any:
        """The first truthy ``predicate()`` (run under the lock), or fail naming ``what``."""
        timeout = self.timeout if timeout is None else timeout
        with self._cond:
            value = self._cond.wait_for(predicate, timeout)
        if not value:
            raise self.failure(f"{self.client_id}: no {what} within {timeout}s")
        return value

    def on(self, topic: str) -> list[Message]:
        """Everything received on ``topic`` so far, oldest first."""
        with self._cond:
            return list(self.received.get(topic, []))

    # ------------------------------------------------------------------ actions

    @property
    def session_present(self) -> bool:
        """The last CONNACK's session-present flag."""
        return bool(self.connacks and self.connacks[-1][1])

    def connect(self, timeout: float | None = None) -> Self:
        """CONNECT, then subscribe to the own inbox (the SUBACK is waited for)."""
        before = len(self.connacks)
        self.paho.connect(HOST, self.port, keepalive=KEEPALIVE)
        self.paho.loop_start()
        self.wait(lambda: len(self.connacks) > before or self.disconnects, "CONNACK", timeout)
        if len(self.connacks) == before or self.connacks[-1][0] != 0:
            raise self.refusal(f"{self.client_id}: CONNECT refused ({self.connacks})")
        if self.subscribe(self.inbox_topic) != [1]:
            raise self.refusal(f"{self.client_id}: SUBSCRIBE to the own inbox refused")
        return self

    def subscribe(self, topic_filter: str, timeout: float | None = None) -> list[int]:
        """SUBSCRIBE at QoS 1; the SUBACK's return codes (0x80 and up: refused)."""
        rc, mid = self.paho.subscribe(topic_filter, 1)
        assert rc == mqtt.MQTT_ERR_SUCCESS and mid is not None, rc
        codes: list[int] = self.wait(
            lambda: self.subacks.get(mid), f"SUBACK for {topic_filter}", timeout
        )
        return codes

    def send_tracked(self, body: Message, topic: str = "chat/out") -> mqtt.MQTTMessageInfo:
        """A QoS 1 PUBLISH of ``body`` as JSON; its PUBACK lands in :attr:`acked` (or
        :attr:`refused`) under the body's ``id`` when it arrives."""
        # Never call paho while holding our lock: paho calls _on_publish holding its own.
        info = self.paho.publish(topic, json.dumps(body), qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return info
        message_id = str(body.get("id"))
        with self._cond:
            code = self._early.pop(info.mid, None)
            if code is None:
                self._mids[info.mid] = message_id
            else:
                self._record_ack(message_id, code)
            self._cond.notify_all()
        return info

    def drop(self) -> None:
        """The network goes away: the connection is cut with no DISCONNECT (see
        :func:`cut_connection`); once paho has noticed, its network loop stops."""
        before = self.disconnects
        had_socket = cut_connection(self.paho)
        assert had_socket, "not connected"
        self.wait(lambda: self.disconnects > before, "notice of the dropped socket")
        self.paho.loop_stop()

    def close(self) -> None:
        """Teardown: disconnect if still connected, never fail."""
        try:
            if self.paho.is_connected():
                self.paho.disconnect()
        finally:
            self.paho.loop_stop()


__all__ = ["KEEPALIVE", "Identity", "Message", "RecordingClient", "cut_connection", "inbox"]
