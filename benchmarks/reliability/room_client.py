"""The scenarios' chat participant: an MQTT client over SigV4 WebSocket counting what it
receives and which of its messages were acknowledged; and a paced sender for load."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from typing import Any

from benchmarks.reliability.stack_process import Info
from tests.support.wss_client import Identity, RecordingClient

TIMEOUT = 30.0


class RoomClient(RecordingClient):
    """A chat participant over SigV4 WebSocket (the shared recording paho client), counting.

    Room messages are counted per ``id`` (a copy beyond the first is a duplicate); errors on
    the inbox are read by ``ref``. It can keep a persistent session (``clean_session=False``)
    and speak MQTT 5 (to read PUBACK reason codes). A missed deadline is a ``TimeoutError``, a
    refused CONNECT or SUBSCRIBE a ``RuntimeError``: a scenario reports them, it does not fail
    a test.
    """

    failure = TimeoutError
    refusal = RuntimeError
    timeout = TIMEOUT

    def __init__(
        self, info: Info, identity: Identity, *, clean_session: bool = True, mqtt5: bool = False
    ) -> None:
        client_id, creds = identity
        super().__init__(info, client_id, creds, clean_session=clean_session, mqtt5=mqtt5)

    def subscribe(self, topic_filter: str, timeout: float | None = None) -> list[int]:
        codes = super().subscribe(topic_filter, timeout)
        if codes[0] >= 0x80:
            raise RuntimeError(f"{self.client_id}: SUBSCRIBE {topic_filter} refused")
        return codes

    def say(self, room: str, message_id: str, text: str = "x") -> None:
        """A QoS 1 room message; its PUBACK is recorded in :attr:`acked` when it arrives."""
        self.send({"v": 1, "type": "message", "id": message_id, "room": room, "body": text})

    def send(self, body: dict[str, Any]) -> None:
        """A QoS 1 message on ``chat/out``, acknowledgement tracked by its ``id``."""
        self.send_tracked(body)

    def wait_acked(self, ids: Iterable[str], what: str) -> None:
        """Wait until every message in ``ids`` was acknowledged."""
        wanted = set(ids)
        self.wait(lambda: self.acked >= wanted, what)

    def wait_disconnected(self, what: str) -> None:
        self.wait(lambda: self.disconnects > 0, what)

    def seen_on(self, room: str) -> Counter[str]:
        """How often each message id arrived on the room's topic."""
        return self._count(f"chat/pub/{room}", "message", "id")

    @property
    def inbox_messages(self) -> Counter[str]:
        """How often each direct message id arrived on the inbox."""
        return self._count(self.inbox_topic, "message", "id")

    @property
    def errors(self) -> dict[str, str]:
        """Error codes on the inbox, by the ``ref`` (message id) they refer to."""
        return {
            str(body.get("ref")): str(body.get("code"))
            for body in self.on(self.inbox_topic)
            if body.get("type") == "error"
        }

    def _count(self, topic: str, kind: str, key: str) -> Counter[str]:
        with self._cond:
            bodies = list(self.received.get(topic, []))
        return Counter(str(b.get(key)) for b in bodies if b.get("type") == kind)


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
