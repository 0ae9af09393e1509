"""Soak: many guests post paced QoS 1 messages to their rooms; every message must be stored
once and reach every member of its room."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any, TypedDict

from benchmarks._harness import wait_until
from benchmarks.reliability.room_client import RoomClient, send_paced
from benchmarks.reliability.stack_process import running_stack
from benchmarks.reliability.store import guest_identity, stored_ids
from tests.support.messages_table import room_conv

# ---------------------------------------------------------------------- 1. soak


class SoakSize(TypedDict):
    """The sizes of one soak run (``soak(workdir, **size)``)."""

    clients: int
    messages: int
    rooms: int
    rate: float
    timeout: float


def soak(
    workdir: Path, *, clients: int, messages: int, rooms: int, rate: float, timeout: float
) -> dict[str, Any]:
    """``clients`` guests each send ``messages`` QoS 1 messages to their room (client i posts
    to room i % rooms and every client subscribes to its own room), paced at ``rate``/s each.
    Every message must be stored exactly once and reach every subscriber of its room."""
    with running_stack(workdir / "soak") as stack:
        info = stack.info
        tag = uuid.uuid4().hex[:6]
        room_names = [f"soak-{tag}-{r}" for r in range(rooms)]
        people = [RoomClient(info, guest_identity(info)) for _ in range(clients)]
        members: dict[str, list[RoomClient]] = {room: [] for room in room_names}
        try:
            for i, person in enumerate(people):
                person.connect()
                room = room_names[i % rooms]
                person.subscribe(f"chat/pub/{room}")
                members[room].append(person)
            senders = [(p, room_names[i % rooms]) for i, p in enumerate(people)]
            began = time.monotonic()
            sent = send_paced(senders, messages, rate, "s")
            send_seconds = time.monotonic() - began
            per_room: dict[str, set[str]] = {room: set() for room in room_names}
            for person, room in senders:
                per_room[room].update(sent[person.client_id])
            total = sum(len(ids) for ids in per_room.values())

            def all_stored() -> bool:
                return all(
                    set(stored_ids(info, room_conv(r))) >= ids for r, ids in per_room.items()
                )

            def all_delivered() -> bool:
                return all(
                    set(p.seen_on(room)) >= ids
                    for room, ids in per_room.items()
                    for p in members[room]
                )

            outcome = "complete"
            try:
                wait_until(all_delivered, timeout, "every delivery", 0.2)
                wait_until(all_stored, timeout, "every message stored", 0.5)
            except TimeoutError as exc:
                outcome = str(exc)
            drain_seconds = time.monotonic() - began - send_seconds
            stored_items = 0
            stored_distinct = 0
            stored_twice = 0
            unexpected = 0
            for room, ids in per_room.items():
                items = stored_ids(info, room_conv(room))
                stored_items += sum(items.values())
                stored_distinct += len(set(items) & ids)
                stored_twice += sum(1 for n in items.values() if n > 1)
                unexpected += len(set(items) - ids)
            expected = delivered = duplicates = 0
            for room, ids in per_room.items():
                for person in members[room]:
                    seen = person.seen_on(room)
                    expected += len(ids)
                    delivered += len(set(seen) & ids)
                    duplicates += sum(n - 1 for i, n in seen.items() if i in ids and n > 1)
            acked = sum(len(p.acked) for p in people)
            store_failed = sum(
                1 for p in people for code in p.errors.values() if code == "STORE_FAILED"
            )
            return {
                "scenario": "soak",
                "clients": clients,
                "messagesPerClient": messages,
                "rooms": rooms,
                "ratePerClient": rate,
                "sent": total,
                "acked": acked,
                "stored": stored_distinct,
                "storedItems": stored_items,
                "storedTwice": stored_twice,
                "storedUnexpected": unexpected,
                "lostStore": total - stored_distinct,
                "storeFailedReported": store_failed,
                "deliveriesExpected": expected,
                "delivered": delivered,
                "duplicates": duplicates,
                "lostDelivery": expected - delivered,
                "sendSeconds": round(send_seconds, 2),
                "drainSeconds": round(drain_seconds, 2),
                "outcome": outcome,
            }
        finally:
            for person in people:
                person.close()
