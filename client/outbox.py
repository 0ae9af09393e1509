"""Nothing a person sent is lost: every chat message stays here until the chat carries it back.

A QoS 1 PUBACK says only that the gateway took the message; the rules, the store or a queue
behind it may still lose it (under overload, or when the connection drops mid-flight). So the
client keeps each message it sends until it sees it again (the room carries a room message
back; a direct or group message comes back to the person's inbox once it is stored) and sends
it again, with the same ``id`` and bytes, after a reconnect or when it has waited too long. The
backend stores a sender's ``id`` once and clients drop a second copy by ``id``, so a resend is
never shown or stored twice (docs/protocol.md).

A room's echo proves delivery, not storage: a stack that dies between the two (a SIGKILL) has
carried a message it never stored. So carried room messages are kept a while longer, and the
history page a client reads after a reconnect is checked against them (:meth:`Outbox.unstored`):
what the room carried but history does not hold is sent again.

An ``error`` naming the message ends it: a refusal (``INVALID_TEXT``...) is final, while
``STORE_FAILED``, ``INTERNAL`` and ``RATE_LIMITED`` mean "not kept, try again", so the message
is sent again even if the room had already carried it. Memory is bounded by a count and bytes;
past them :meth:`Outbox.add` refuses with :class:`OutboxFull` instead of dropping anything.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

RESEND_AFTER = 8.0  # seconds without the message coming back before it is sent again
MAX_BACKOFF = 60.0  # the longest wait between two resends of one message
MAX_MESSAGES = 1_000
MAX_BYTES = 4 * 1024 * 1024
KEEP_CONFIRMED = 120.0  # seconds a carried message is kept in case it was never stored
CONFIRMED_LIMIT = 500
# Errors that mean "this message was not kept: send it again" (docs/protocol.md, Errors).
TRANSIENT = frozenset({"STORE_FAILED", "INTERNAL", "RATE_LIMITED"})


class OutboxFull(RuntimeError):
    """Too much is waiting to be confirmed; the caller should wait for the connection."""


@dataclass
class Pending:
    message_id: str
    topic: str
    payload: bytes
    sent: float  # monotonic time of the last send
    wait: float  # how long to wait before the next resend
    attempts: int = 1
    room: str | None = None  # for a room message: where history must hold it


class Outbox:
    """Sent-but-unconfirmed messages, resent by :meth:`due` and :meth:`all_pending`.

    ``clock`` is injectable so the resend schedule is tested without sleeping."""

    def __init__(
        self,
        *,
        resend_after: float = RESEND_AFTER,
        max_messages: int = MAX_MESSAGES,
        max_bytes: int = MAX_BYTES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.resend_after = resend_after
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._clock = clock
        self._pending: OrderedDict[str, Pending] = OrderedDict()
        self._confirmed: OrderedDict[str, tuple[Pending, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)

    def pending_ids(self) -> list[str]:
        with self._lock:
            return list(self._pending)

    def add(self, message_id: str, topic: str, payload: bytes, room: str | None = None) -> None:
        with self._lock:
            if message_id in self._pending:
                return
            if (
                len(self._pending) >= self.max_messages
                or self._bytes + len(payload) > self.max_bytes
            ):
                raise OutboxFull(
                    f"{len(self._pending)} messages are still waiting to be confirmed; "
                    "try again once the connection is back"
                )
            self._pending[message_id] = Pending(
                message_id, topic, payload, self._clock(), self.resend_after, room=room
            )
            self._bytes += len(payload)

    def confirm(self, message_id: str) -> bool:
        """The chat carried ``message_id`` back: stop resending it (kept a while in case its
        store fails). True when it was waiting."""
        with self._lock:
            entry = self._pop(message_id)
            if entry is None:
                return False
            now = self._clock()
            self._confirmed[message_id] = (entry, now)
            while self._confirmed and (
                len(self._confirmed) > CONFIRMED_LIMIT
                or next(iter(self._confirmed.values()))[1] < now - KEEP_CONFIRMED
            ):
                self._confirmed.popitem(last=False)
            return True

    def refused(self, message_id: str, code: str, retry_after: float | None = None) -> bool:
        """An ``error`` about ``message_id``: final refusals end it, transient ones make it due
        again (after ``retry_after`` seconds when the backend says so). True when it was ours."""
        with self._lock:
            if code not in TRANSIENT:
                gone = self._pop(message_id) is not None
                return self._confirmed.pop(message_id, None) is not None or gone
            entry = self._pending.get(message_id)
            if entry is None:
                kept = self._confirmed.pop(message_id, None)
                if kept is None:
                    return False
                entry = kept[0]
                self._pending[message_id] = entry
                self._bytes += len(entry.payload)
            entry.sent = self._clock()
            entry.wait = retry_after if retry_after is not None else 0.0
            return True

    def now(self) -> float:
        return self._clock()

    def unstored(self, room: str, stored: set[str], before: float) -> list[Pending]:
        """Room messages carried before ``before`` (a reconnect) but missing from ``room``'s
        history page read after it (``stored``: our ids on it): pending again and returned, to
        be sent again now. A resend of one that was stored after all is harmless: the store
        keeps the first copy, clients show one."""
        now = self._clock()
        with self._lock:
            missing = [
                entry
                for message_id, (entry, carried) in self._confirmed.items()
                if entry.room == room and message_id not in stored and carried < before
            ]
            for entry in missing:
                del self._confirmed[entry.message_id]
                self._pending[entry.message_id] = entry
                self._bytes += len(entry.payload)
                self._mark_sent(entry, now)
            return missing

    def due(self) -> list[Pending]:
        """Messages waited on too long; each is marked sent now, with a longer next wait."""
        now = self._clock()
        with self._lock:
            late = [e for e in self._pending.values() if now - e.sent >= e.wait]
            for entry in late:
                self._mark_sent(entry, now)
            return late

    def all_pending(self) -> list[Pending]:
        """Everything still waiting (after a reconnect: send it all again), marked sent now."""
        now = self._clock()
        with self._lock:
            entries = list(self._pending.values())
            for entry in entries:
                self._mark_sent(entry, now)
            return entries

    def _mark_sent(self, entry: Pending, now: float) -> None:
        entry.sent = now
        entry.attempts += 1
        entry.wait = min(max(entry.wait * 2, self.resend_after), MAX_BACKOFF)

    def _pop(self, message_id: str) -> Pending | None:
        entry = self._pending.pop(message_id, None)
        if entry is not None:
            self._bytes -= len(entry.payload)
        return entry
