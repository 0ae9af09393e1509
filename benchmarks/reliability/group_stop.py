"""A stack stopped by a signal to its whole process group right after a burst of room
messages: every message its subscribers saw must be in history after the restart.

Ctrl-C at a terminal, ``kill -- -PGID``, systemd and container runtimes signal the whole
group. If dynalite shared the stack's group it would die at the same instant, and the store
actions still in flight during the stack's drain would fail: a message already delivered to the
room, never stored.
"""

from __future__ import annotations

import signal
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from benchmarks._harness import wait_until
from benchmarks.reliability.room_client import TIMEOUT, RoomClient
from benchmarks.reliability.stack_process import StackProcess
from benchmarks.reliability.store import guest_identity, stored_ids
from tests.support.messages_table import room_conv


def group_stop(workdir: Path, *, burst: int, sig: int = signal.SIGTERM) -> dict[str, Any]:
    """One sender bursts ``burst`` QoS 1 room messages; as soon as a subscriber has received
    them all, the stack's process group gets ``sig``. The stack is started again on the same
    state dir, and the delivered ids are looked up in the store."""
    stack = StackProcess(workdir / "group-stop", own_group=True)
    info = stack.start()
    room = f"group-stop-{uuid.uuid4().hex[:8]}"
    sender = RoomClient(info, guest_identity(info))
    listener = RoomClient(info, guest_identity(info))
    try:
        listener.connect()
        listener.subscribe(f"chat/pub/{room}")
        sender.connect()
        ids = [f"g-{n}" for n in range(burst)]
        for n, message_id in enumerate(ids):
            sender.say(room, message_id, f"burst {n}")
        listener.wait(lambda: set(listener.seen_on(room)) >= set(ids), "burst delivered")
        delivered = set(listener.seen_on(room))
        # At once: the store actions of the last messages are still in flight.
        stack.stop_group(sig)
        stopped_clean = stack.proc is not None and stack.proc.returncode == 0
        sender.close()
        listener.close()

        info = stack.start(stack.ports())
        expected = delivered & set(ids)
        with suppress(TimeoutError):  # what is missing is reported below
            wait_until(
                lambda: set(stored_ids(info, room_conv(room))) >= expected, TIMEOUT, "stored"
            )
        stored = stored_ids(info, room_conv(room))
        return {
            "scenario": "group-stop",
            "signal": signal.Signals(sig).name,
            "sent": len(ids),
            "delivered": len(expected),
            "stored": len(set(stored) & expected),
            "storedTwice": sum(1 for n in stored.values() if n > 1),
            "stoppedClean": stopped_clean,
        }
    finally:
        sender.close()
        listener.close()
        stack.close()
