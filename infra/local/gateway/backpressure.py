"""Backpressure: when the work behind the gateway falls behind, publishers wait instead of
the stack accepting messages it then loses.

Two things measure "behind": the rule work in flight (:class:`WorkGauge`, fed by the rules
engine: the evaluations queued on the loop and the action tasks, each by count, and their
bytes, each with a high and a low watermark), and connected subscribers whose QoS 1 queue
has grown past ``Limits.busy_queue_messages`` (they are reading, just not as fast as
messages come in).

While either says so, the broker stops reading from every connection that has published
(:class:`PublisherHold`): the packets left in the read it was handling wait in the connection,
the transport stops reading, and TCP flow control slows the sender. Pure subscribers are never
held, so their PUBACKs keep freeing their delivery windows. A publisher held longer than
``Limits.publisher_hold_seconds`` gets AWS's answer to a publisher over a limit: MQTT 5 PUBACK
0x97 (Quota exceeded) on each publish while the stack stays saturated, MQTT 3.1.1 a disconnect
with ``THROTTLED``, as for the per-connection publish rate
(https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits: the broker
also stops accepting a client's messages while 100 of its QoS 1 publishes are unacknowledged).

A subscriber busy for longer than the same bound without catching up is *slow*: it no longer
holds the publishers back, and what overflows its queue is dropped, counted
(``dropped_qos1``, ``slow_subscribers``) and logged. AWS documents no disconnect for a client
that reads slowly: it sends at most 100 unacknowledged QoS 1 messages and drops a message it
could not deliver within an hour (same page), so the slow subscriber stays connected.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from .limits import Limits

if TYPE_CHECKING:
    from .connection import ClientConnection
    from .session import Session, SessionConnection

log = logging.getLogger("iotchat.gateway")

# How often the hold's one timer looks at held publishers and busy subscribers.
TICK_SECONDS = 0.5
# At most one "slow subscriber" or "publishers held" warning per this many seconds.
LOG_INTERVAL_SECONDS = 10.0


class WorkGauge:
    """Work in flight behind the gateway, with hysteresis: saturated from the moment one count
    passes its high watermark until every one is under its low one (half).

    Two counts, because they bound different things: the evaluations queued on the loop become
    deliveries all at once (each room message one per subscriber), so few are allowed; the
    action tasks (a store waiting for its batch write) only hold memory, and by Little's law
    there are as many as the store rate times its latency, so many are allowed. Their payload
    bytes together have a bound of their own."""

    __slots__ = (
        "bytes_",
        "evaluations",
        "high_bytes",
        "high_evaluations",
        "high_tasks",
        "listener",
        "saturated",
        "tasks",
    )

    def __init__(self, high_evaluations: int, high_tasks: int, high_bytes: int) -> None:
        self.high_evaluations = high_evaluations
        self.high_tasks = high_tasks
        self.high_bytes = high_bytes
        self.evaluations = 0
        self.tasks = 0
        self.bytes_ = 0
        self.saturated = False
        # Told of every change of ``saturated`` (the publisher hold).
        self.listener: Callable[[], None] | None = None

    @property
    def count(self) -> int:
        return self.evaluations + self.tasks

    def add(self, nbytes: int, *, task: bool = False) -> None:
        if task:
            self.tasks += 1
        else:
            self.evaluations += 1
        self.bytes_ += nbytes
        if not self.saturated and (
            self.evaluations > self.high_evaluations
            or self.tasks > self.high_tasks
            or self.bytes_ > self.high_bytes
        ):
            self.saturated = True
            if self.listener is not None:
                self.listener()

    def remove(self, nbytes: int, *, task: bool = False) -> None:
        if task:
            self.tasks -= 1
        else:
            self.evaluations -= 1
        self.bytes_ -= nbytes
        if (
            self.saturated
            and self.evaluations * 2 <= self.high_evaluations
            and self.tasks * 2 <= self.high_tasks
            and self.bytes_ * 2 <= self.high_bytes
        ):
            self.saturated = False
            if self.listener is not None:
                self.listener()


class PublisherHold:
    """Holds publishing connections while the stack is saturated; see the module docstring."""

    def __init__(
        self, limits: Limits, loop: asyncio.AbstractEventLoop, stats: dict[str, int]
    ) -> None:
        self.limits = limits
        self.loop = loop
        self.work = WorkGauge(
            limits.rule_evaluations_high, limits.rule_tasks_high, limits.rule_work_high_bytes
        )
        self.work.listener = self.changed
        # Connected subscribers with a long queue, and since when (loop time).
        self.busy: dict[Session, float] = {}
        # Held connections and since when; a refusing one reads again but is answered 0x97.
        self.held: dict[ClientConnection, float] = {}
        self.refusing: set[ClientConnection] = set()
        # Set by the broker: read a held connection again and handle what waited; end an
        # MQTT 3.1.1 connection held too long (THROTTLED).
        self.resume: Callable[[ClientConnection], None] = _unset
        self.throttle: Callable[[ClientConnection], None] = _unset
        self.stats = stats
        self.saturated = False
        self._tick: asyncio.TimerHandle | None = None
        self._release_scheduled = False
        self._logged_at = -LOG_INTERVAL_SECONDS

    # ------------------------------------------------------------------ the two inputs

    def changed(self) -> None:
        """The gauge or the busy set changed: hold or (on the next turn) release."""
        saturated = self.work.saturated or bool(self.busy)
        if saturated == self.saturated:
            return
        self.saturated = saturated
        if saturated:
            self.stats["backpressure_episodes"] += 1
            self._arm()
        elif not self._release_scheduled:
            # Not from inside the callback that freed the work (an engine task's end), and in
            # a context of its own: the publishes it lets through must not inherit that
            # message's trace id or republish hop count.
            self._release_scheduled = True
            self.loop.call_soon(self._release, context=contextvars.Context())

    def queue_grew(self, session: Session, conn: SessionConnection) -> None:
        """A connected session's queue just took a delivery: busy once long enough (a held
        connection's session is not: it cannot acknowledge while we do not read it)."""
        if (
            len(session.pending) >= self.limits.busy_queue_messages
            and session not in self.busy
            and not session.slow
            and conn not in self.held
        ):
            self.busy[session] = self.loop.time()
            self.changed()

    def queue_shrank(self, session: Session) -> None:
        """Caught up: half the busy length or less (hysteresis)."""
        if len(session.pending) * 2 <= self.limits.busy_queue_messages:
            session.slow = False
            if self.busy.pop(session, None) is not None:
                self.changed()

    def forget(self, session: Session) -> None:
        """The session's connection is gone."""
        session.slow = False
        if self.busy.pop(session, None) is not None:
            self.changed()

    # ------------------------------------------------------------------ holding

    def should_hold(self, conn: ClientConnection) -> bool:
        """Called before each PUBLISH a connection sends is handled."""
        return (
            self.saturated
            and conn.connected
            and conn not in self.held
            and conn not in self.refusing
        )

    def hold(self, conn: ClientConnection) -> None:
        self.held[conn] = self.loop.time()
        conn.sink.pause_reading()
        session = conn.session
        if session is not None:
            self.forget(session)
        self.stats["publishers_held"] += 1

    def refuses(self, conn: ClientConnection) -> bool:
        """Whether this PUBLISH gets 0x97: the connection was held too long and the stack is
        still saturated."""
        return self.saturated and conn in self.refusing

    def dropped(self, session: Session) -> None:
        """A connected subscriber's queue overflowed: counted by the router, logged here."""
        self._log(f"QoS 1 queue of {session.client_id!r} full: newest message dropped")

    def closed(self, conn: ClientConnection) -> None:
        self.held.pop(conn, None)
        self.refusing.discard(conn)

    def _arm(self) -> None:
        if self._tick is None:
            self._tick = self.loop.call_later(
                TICK_SECONDS, self._on_tick, context=contextvars.Context()
            )

    def _on_tick(self) -> None:
        """The one timer: publishers held too long get AWS's answer, subscribers busy too long
        become slow. Re-armed while anything is held or busy."""
        self._tick = None
        now = self.loop.time()
        bound = self.limits.publisher_hold_seconds
        for session, since in list(self.busy.items()):
            if session.connection is None:
                self.busy.pop(session, None)
            elif now - since >= bound:
                session.slow = True
                self.busy.pop(session, None)
                self.stats["slow_subscribers"] += 1
                self._log(f"subscriber {session.client_id!r} is slow: its queue overflows")
        self.changed()  # a subscriber found slow may be all that held the publishers
        for conn, since in list(self.held.items()):
            if conn.closed:
                self.held.pop(conn, None)
            elif self.saturated and now - since >= bound:
                self.held.pop(conn, None)
                self.stats["publishers_throttled"] += 1
                self._log(f"{conn!r} held {bound:g} s: answered as throttled")
                if conn.version == 5:
                    self.refusing.add(conn)
                    self.resume(conn)
                else:
                    self.throttle(conn)
        self.changed()
        if self.held or self.busy or self.refusing or self.saturated:
            self._arm()

    def _release(self) -> None:
        self._release_scheduled = False
        if self.saturated:
            return
        self.refusing.clear()
        held, self.held = self.held, {}
        for conn in held:
            if not conn.closed:
                self.resume(conn)

    def _log(self, what: str) -> None:
        now = self.loop.time()
        if now - self._logged_at >= LOG_INTERVAL_SECONDS:
            self._logged_at = now
            log.warning(
                "backpressure: %s (rule work %d, %d bytes; %d busy subscribers; stats %s)",
                what,
                self.work.count,
                self.work.bytes_,
                len(self.busy),
                {k: v for k, v in self.stats.items() if v},
            )


def _unset(conn: ClientConnection) -> None:
    raise RuntimeError("the broker has not wired the publisher hold")
