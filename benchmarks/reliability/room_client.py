"""The scenarios' chat participant: an MQTT client over SigV4 WebSocket counting what it
receives and which of its messages were acknowledged; and a paced sender for load."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import suppress
from typing import Any
from urllib.parse import urlsplit

from benchmarks.reliability.stack_process import Info

TIMEOUT = 30.0
KEEPALIVE = 1200


# ---------------------------------------------------------------------- an MQTT chat client


class RoomClient:
    """A chat participant over SigV4 WebSocket (paho-mqtt), counting what it receives.

    Room messages are counted per topic and ``id`` (a copy beyond the first is a duplicate);
    errors on the inbox are kept by ``ref``. It can vanish without a DISCONNECT (:meth:`drop`)
    and can keep a persistent session (``clean_session=False``).
    """

    def __init__(
        self,
        info: Info,
        identity: tuple[str, dict[str, Any]],
        *,
        clean_session: bool = True,
        mqtt5: bool = False,
    ) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from infra.local.sigv4 import presign_url

        self.client_id, creds = identity
        self.creds = creds
        self.inbox = f"chat/in/{self.client_id}"
        self._cond = threading.Condition()
        self.seen: dict[str, Counter[str]] = {}
        self.errors: dict[str, str] = {}  # ref -> code
        self.inbox_messages: Counter[str] = Counter()
        self.connacks: list[tuple[int, bool]] = []
        self.disconnects = 0
        self.acked: set[str] = set()
        self.refused: dict[str, int] = {}  # id -> MQTT 5 PUBACK reason code
        self._mids: dict[int, str] = {}
        self._early: dict[int, int] = {}
        port = info["iot"]["wssPort"]
        kwargs: dict[str, Any] = {}
        if not mqtt5:
            kwargs["clean_session"] = clean_session
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=mqtt.MQTTv5 if mqtt5 else mqtt.MQTTv311,
            transport="websockets",
            reconnect_on_failure=False,
            **kwargs,
        )
        client.tls_set(ca_certs=info["iot"]["caFile"])
        url = presign_url(
            f"127.0.0.1:{port}",
            str(creds["AccessKeyId"]),
            str(creds["SecretKey"]),
            region=info["region"],
            session_token=str(creds["SessionToken"]),
        )
        client.ws_set_options(path="/mqtt?" + urlsplit(url).query)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_disconnect = self._on_disconnect
        self.paho = client
        self.port = port
        self.mqtt5 = mqtt5

    # network thread ------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        with self._cond:
            self.connacks.append((reason.value, bool(flags.session_present)))
            self._cond.notify_all()

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            body = json.loads(message.payload)
        except ValueError:
            return
        with self._cond:
            if message.topic == self.inbox:
                if body.get("type") == "error":
                    self.errors[str(body.get("ref"))] = str(body.get("code"))
                elif body.get("type") == "message":
                    self.inbox_messages[str(body.get("id"))] += 1
            elif body.get("type") == "message":
                self.seen.setdefault(message.topic, Counter())[str(body.get("id"))] += 1
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

    # actions -------------------------------------------------------------------

    def wait(self, predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        with self._cond:
            value = self._cond.wait_for(predicate, timeout)
        if not value:
            raise TimeoutError(f"{self.client_id}: no {what} within {timeout:.0f} s")
        return value

    def connect(self) -> bool:
        """CONNECT and subscribe to the inbox; returns the CONNACK's session-present flag."""
        before = len(self.connacks)
        self.paho.connect("127.0.0.1", self.port, keepalive=KEEPALIVE)
        self.paho.loop_start()
        self.wait(lambda: len(self.connacks) > before or self.disconnects, "CONNACK")
        code, present = self.connacks[-1]
        if code != 0:
            raise RuntimeError(f"{self.client_id}: CONNECT refused ({code})")
        self.subscribe(self.inbox)
        return present

    def subscribe(self, topic_filter: str) -> None:
        done = threading.Event()
        granted: list[Any] = []

        def on_subscribe(client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
            granted.extend(codes)
            done.set()

        self.paho.on_subscribe = on_subscribe
        self.paho.subscribe(topic_filter, 1)
        if not done.wait(TIMEOUT) or granted[0].value >= 0x80:
            raise RuntimeError(f"{self.client_id}: SUBSCRIBE {topic_filter} refused")

    def say(self, room: str, message_id: str, text: str = "x") -> None:
        """A QoS 1 room message; its PUBACK is recorded in :attr:`acked` when it arrives."""
        body = {"v": 1, "type": "message", "id": message_id, "room": room, "text": text}
        self.send(body)

    def send(self, body: dict[str, Any]) -> None:
        # Never call paho while holding our lock: paho calls _on_publish holding its own.
        info = self.paho.publish("chat/out", json.dumps(body), qos=1)
        if info.rc != 0:
            return
        message_id = str(body.get("id"))
        with self._cond:
            code = self._early.pop(info.mid, None)
            if code is None:
                self._mids[info.mid] = message_id
            else:
                self._record_ack(message_id, code)
            self._cond.notify_all()

    def seen_on(self, room: str) -> Counter[str]:
        with self._cond:
            return Counter(self.seen.get(f"chat/pub/{room}", Counter()))

    def drop(self) -> None:
        """Vanish: stop the network loop and close the socket, no DISCONNECT."""
        sock = self.paho.socket()
        self.paho.loop_stop()
        if sock is not None:
            raw = getattr(sock, "_socket", sock)
            with suppress(OSError):
                socket.socket.shutdown(raw, socket.SHUT_RDWR)

    def close(self) -> None:
        try:
            if self.paho.is_connected():
                self.paho.disconnect()
        finally:
            self.paho.loop_stop()


def send_paced(
    senders: list[tuple[RoomClient, str]], count: int, rate: float, prefix: str
) -> dict[str, list[str]]:
    """Each (client, room) sends ``count`` messages at ``rate`` per second (well under AWS's
    100 publishes/s per connection); returns the ids each client sent, by client id."""
    sent: dict[str, list[str]] = {c.client_id: [] for c, _ in senders}
    began = time.monotonic()
    for n in range(count):
        for client, room in senders:
            message_id = f"{prefix}-{client.client_id[-8:]}-{n}"
            client.say(room, message_id, f"message {n}")
            sent[client.client_id].append(message_id)
        # Pacing a load generator, not synchronising: the schedule is fixed in advance.
        delay = began + (n + 1) / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    return sent
