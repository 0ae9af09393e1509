"""One client connection as the broker sees it, independent of TCP, TLS or WebSocket.

The transport layer hands bytes to the broker and gives it a :class:`Sink` to write to; the
connection batches everything the broker writes during one event-loop turn into a single
write, which is what makes fan-out cheap (one system call per subscriber per turn instead
of one per message).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Protocol

from infra.local.identity import Principal

from .codec import MQTT_311, Packet, PacketReader, encode
from .lifecycle import ConnectionIdentity

if TYPE_CHECKING:
    from .codec import Will
    from .session import Session


class Sink(Protocol):
    """What a transport offers the broker."""

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class ClientConnection:
    __slots__ = (
        "aliases",
        "client_id",
        "client_max_packet",
        "client_receive_maximum",
        "close_reason",
        "closed",
        "connected",
        "flusher",
        "identity",
        "keep_alive",
        "last_seen",
        "listener",
        "out",
        "out_bytes",
        "paused",
        "principal",
        "rate_last",
        "rate_tokens",
        "reader",
        "session",
        "sink",
        "source_ip",
        "stash",
        "subscription_count",
        "version",
        "will",
        "will_delay",
    )

    def __init__(
        self,
        sink: Sink,
        flusher: Flusher,
        *,
        listener: str,
        source_ip: str,
        principal: Principal | None,
        max_packet_size: int,
    ) -> None:
        self.sink = sink
        self.flusher = flusher
        self.listener = listener  # "tcp", "tls", "wss" or "ws"
        self.source_ip = source_ip
        self.principal = principal  # set by TLS/WSS before CONNECT, by CONNECT on plain TCP
        self.reader = PacketReader(max_packet_size)
        self.version = MQTT_311
        self.client_id = ""
        self.connected = False
        self.closed = False
        self.close_reason: str | None = None
        self.session: Session | None = None
        self.identity: ConnectionIdentity | None = None
        self.will: Will | None = None
        self.will_delay = 0
        self.keep_alive = 0
        self.last_seen = 0.0
        self.out: list[bytes] | None = None  # this turn's writes, once there are any
        self.out_bytes = 0  # what ``out`` holds; the transport's buffer sets ``paused``
        self.paused = False
        self.client_receive_maximum = 65535
        self.client_max_packet: int | None = None
        self.aliases: dict[int, str] | None = None  # MQTT 5 topic aliases, once one is set
        self.rate_tokens = 0.0
        self.rate_last = 0.0
        self.subscription_count = 0
        # Packets read but not yet handled while the connection is held (backpressure.py).
        self.stash: list[Packet] | None = None

    def __repr__(self) -> str:
        return f"<ClientConnection {self.client_id!r} {self.listener} from {self.source_ip}>"

    def write(self, data: bytes) -> None:
        """Queue bytes for this turn's single write."""
        if self.closed:
            return
        out = self.out
        if out is None:
            self.out = [data]
            self.flusher.mark(self)
        else:
            out.append(data)
        self.out_bytes += len(data)

    def take_rate_token(self, now: float, rate: float) -> bool:
        """One inbound publish against the per-connection rate (a token bucket of ``rate``)."""
        tokens = min(rate, self.rate_tokens + (now - self.rate_last) * rate)
        self.rate_last = now
        if tokens < 1.0:
            self.rate_tokens = tokens
            return False
        self.rate_tokens = tokens - 1.0
        return True

    def send(self, packet: Packet) -> None:
        self.write(encode(packet, self.version))

    def flush(self) -> None:
        out = self.out
        if out is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        self.out = None
        self.out_bytes = 0
        if not self.closed:
            self.sink.write(data)


class Flusher:
    """Writes every connection that got data during this loop turn, once, at its end."""

    __slots__ = ("_dirty", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._dirty: list[ClientConnection] = []
        self._scheduled = False

    def mark(self, conn: ClientConnection) -> None:
        self._dirty.append(conn)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, []
        for conn in dirty:
            conn.flush()
