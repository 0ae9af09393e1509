"""The outbox's rules on their own (a fake clock, no stack): what is resent, when, and what is
never dropped. tests/client/test_delivery.py checks the same against a real stack."""

from __future__ import annotations

import pytest

from client.outbox import MAX_BACKOFF, Outbox, OutboxFull


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_message_is_resent_with_its_bytes_until_it_comes_back_with_growing_waits() -> None:
    clock = Clock()
    box = Outbox(resend_after=8.0, clock=clock)
    box.add("m1", "chat/out", b'{"id":"m1"}')
    clock.now += 7.9
    assert box.due() == []
    clock.now += 0.1
    (again,) = box.due()
    assert (again.message_id, again.topic, again.payload) == ("m1", "chat/out", b'{"id":"m1"}')
    clock.now += 8.0
    assert box.due() == []  # the second wait is longer
    clock.now += 8.0
    assert [e.attempts for e in box.due()] == [3]
    for _ in range(10):
        clock.now += MAX_BACKOFF
        assert len(box.due()) == 1  # never waits longer than MAX_BACKOFF, never gives up
    assert box.confirm("m1") is True
    clock.now += MAX_BACKOFF
    assert box.due() == [] and len(box) == 0
    assert box.confirm("m1") is False  # a second echo (a resend carried twice) is nothing


def test_after_a_reconnect_everything_pending_goes_again_in_order() -> None:
    box = Outbox(clock=Clock())
    for n in range(3):
        box.add(f"m{n}", "chat/out", b"x")
    box.confirm("m1")
    assert [e.message_id for e in box.all_pending()] == ["m0", "m2"]


def test_a_refusal_ends_a_message_and_a_failed_store_brings_it_back() -> None:
    clock = Clock()
    box = Outbox(clock=clock)
    box.add("bad", "chat/out", b"x")
    assert box.refused("bad", "INVALID_TEXT") is True
    assert box.pending_ids() == []  # refused for good: resending would be refused again
    box.add("kept", "chat/out", b"y")
    box.confirm("kept")  # the room carried it...
    assert box.refused("kept", "STORE_FAILED") is True  # ...but it was not stored
    (again,) = box.due()  # so it goes again at once, same bytes
    assert again.payload == b"y"
    box.confirm("kept")
    box.add("slow", "chat/out", b"z")
    box.refused("slow", "RATE_LIMITED", retry_after=20)
    clock.now += 19
    assert [e.message_id for e in box.due()] == []
    clock.now += 1
    assert [e.message_id for e in box.due()] == ["slow"]
    assert box.refused("never-sent", "STORE_FAILED") is False


def test_memory_is_bounded_by_count_and_bytes_and_full_is_said_not_dropped() -> None:
    box = Outbox(max_messages=2, max_bytes=10, clock=Clock())
    box.add("a", "chat/out", b"12345")
    with pytest.raises(OutboxFull, match="waiting to be confirmed"):
        box.add("b", "chat/out", b"123456")  # 11 bytes in all
    box.add("b", "chat/out", b"12345")
    with pytest.raises(OutboxFull):
        box.add("c", "chat/out", b"1")
    assert box.pending_ids() == ["a", "b"]  # nothing already accepted was dropped
    box.confirm("a")
    box.add("c", "chat/out", b"1")
    assert box.pending_ids() == ["b", "c"]


def test_room_messages_carried_but_missing_from_history_after_a_reconnect_go_again() -> None:
    clock = Clock()
    box = Outbox(clock=clock)
    for message_id in ("stored", "lost", "elsewhere"):
        room = "other" if message_id == "elsewhere" else "lobby"
        box.add(message_id, "chat/out", message_id.encode(), room)
        box.confirm(message_id)  # the rooms carried all three
    clock.now += 5
    reconnected = box.now()
    box.add("after", "chat/out", b"after", "lobby")
    box.confirm("after")  # carried after the reconnect: its store may simply not be done yet
    again = box.unstored("lobby", {"stored"}, reconnected)
    assert [e.payload for e in again] == [b"lost"]  # the stack died between carry and store
    assert box.pending_ids() == ["lost"]
    assert box.unstored("lobby", {"stored"}, reconnected) == []  # asked once per reading
