"""Backpressure: while the work behind the gateway is saturated, publishers wait (TCP flow
control) instead of the gateway accepting what it cannot finish; a publisher held too long is
told as AWS tells a throttled one; a slow subscriber's overflow is counted, not silent.

The rule work is played by a tap on the real gateway that reports each message on ``work/...``
to the gateway's :class:`WorkGauge` and finishes it only when the test says so (the stack's
rules engine does the same for its evaluations and action tasks). Clients are real paho
clients and raw sockets over loopback TCP.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import Any

import pytest

from infra.local.gateway import Limits
from infra.local.gateway.delivery import PublishEvent
from infra.local.trace import current_trace
from tests.infra.local.gateway.peers import disconnect_reason, presence, uid
from tests.support.raw_mqtt import tcp_connect, tcp_subscribe
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

HIGH = 5  # the rule work that saturates: a 6th message in flight holds publishers


class RuleWork:
    """Every message on ``work/#`` is rule work in flight until :meth:`finish_all`."""

    def __init__(self, gw: GatewayHandle) -> None:
        self.gw = gw
        self.gauge = gw.gateway.broker.hold.work
        self.in_flight: list[int] = []
        gw.call(lambda: gw.gateway.add_tap(self._tap))

    def _tap(self, event: PublishEvent) -> None:
        if event.topic.startswith("work/"):
            self.gauge.add(len(event.payload))
            self.in_flight.append(len(event.payload))

    def finish_all_now(self) -> None:
        """On the gateway's loop."""
        while self.in_flight:
            self.gauge.remove(self.in_flight.pop())

    def finish_all(self) -> None:
        self.gw.call(self.finish_all_now)


def stats(gw: GatewayHandle) -> dict[str, int]:
    return dict(gw.call(lambda: dict(gw.gateway.broker.stats)))


@pytest.fixture
def held_gateway(start_gateway: Any) -> GatewayHandle:
    return start_gateway(
        Limits(rule_evaluations_high=HIGH, publisher_hold_seconds=30, publishes_per_second=1e6)
    )


@pytest.fixture
def work(held_gateway: GatewayHandle) -> Iterator[RuleWork]:
    work = RuleWork(held_gateway)
    yield work
    work.finish_all()


def test_saturated_publisher_waits_then_everything_is_delivered_in_order(held_gateway, work, peers):
    gw = held_gateway
    topic = f"work/{uid('room')}"
    sub = peers(gw, uid("sub"))
    assert sub.subscribe([(topic, 1), ("side/#", 1)]) == [1, 1]
    pub = peers(gw, uid("pub"))
    mids = [pub.publish(topic, f"m{n}".encode()) for n in range(20)]

    # The 6th message saturates the work: the 7th PUBLISH and what follows wait unanswered.
    wait_for(lambda: stats(gw)["publishers_held"] == 1)
    wait_for(lambda: len(sub.payloads(topic)) == HIGH + 1)
    # The publisher's reader may still be reading its PUBACKs: wait for them, then no more.
    wait_for(lambda: len(pub.pubacks) == HIGH + 1)
    assert len([e for e in gw.tapped if e.topic == topic]) == HIGH + 1

    # A pure subscriber is never held: it still receives (and acknowledges) while held.
    gw.call(lambda: gw.gateway.publish("side/news", b"still served", qos=1))
    wait_for(lambda: sub.payloads("side/news") == [b"still served"])

    def rules_keep_up() -> bool:
        work.finish_all()  # the rules catch up: the held publisher is read again
        return len(pub.pubacks) == 20

    wait_for(rules_keep_up)
    assert all(pub.pubacks[mid] == 0 for mid in mids)
    wait_for(lambda: len(sub.payloads(topic)) == 20)
    assert sub.payloads(topic) == [f"m{n}".encode() for n in range(20)]
    assert pub.connected and stats(gw)["publishers_throttled"] == 0


def test_unsaturated_gateway_never_holds(held_gateway, work, peers):
    """Under the watermark nothing waits: the work finishing as fast as it comes."""
    gw = held_gateway
    topic = f"work/{uid('room')}"
    pub = peers(gw, uid("pub"))
    for _ in range(3 * HIGH):
        assert pub.puback(pub.publish(topic, b"x")) == 0
        work.finish_all()
    assert stats(gw)["publishers_held"] == 0


@pytest.fixture
def impatient_gateway(start_gateway: Any) -> GatewayHandle:
    return start_gateway(
        Limits(rule_evaluations_high=HIGH, publisher_hold_seconds=1, publishes_per_second=1e6)
    )


def test_mqtt5_publisher_held_too_long_gets_0x97_and_stays_connected(impatient_gateway, peers):
    gw = impatient_gateway
    work = RuleWork(gw)
    try:
        topic = f"work/{uid('room')}"
        pub = peers(gw, uid("pub5"))
        mids = [pub.publish(topic, b"x") for _ in range(HIGH + 10)]
        wait_for(lambda: len(pub.pubacks) == len(mids), timeout=10)
        codes = [pub.pubacks[mid] for mid in mids]
        assert codes[: HIGH + 1] == [0] * (HIGH + 1)
        assert codes[HIGH + 1 :] == [0x97] * 9  # Quota exceeded, as AWS answers a throttle
        assert pub.connected
        assert stats(gw)["publishers_throttled"] == 1
        # Once the work is done, the same connection publishes normally again.
        work.finish_all()
        wait_for(lambda: pub.puback(pub.publish("other/topic", b"y")) == 0)
    finally:
        work.finish_all()


def test_mqtt311_publisher_held_too_long_is_disconnected_throttled(impatient_gateway, peers):
    gw = impatient_gateway
    work = RuleWork(gw)
    try:
        topic = f"work/{uid('room')}"
        other = peers(gw, uid("other"))  # a pure subscriber: not held, not disconnected
        assert other.subscribe([(topic, 1)]) == [1]
        client_id = uid("pub3")
        pub = peers(gw, client_id, version=3)
        for _ in range(HIGH + 10):
            pub.publish(topic, b"x")
        pub.wait_gone(timeout=10)
        assert disconnect_reason(gw, client_id) == "THROTTLED"
        assert len(pub.pubacks) == HIGH + 1  # the rest were never accepted, so never lost
        assert other.connected and not presence(gw, "disconnected", other.client_id)
    finally:
        work.finish_all()


def test_slow_subscriber_stops_holding_publishers_and_its_overflow_is_counted(start_gateway, peers):
    """A subscriber that never reads: busy, then slow; its overflow is counted and it stays
    connected (AWS documents no disconnect for a client that reads slowly)."""
    gw = start_gateway(
        Limits(
            busy_queue_messages=20,
            max_queued_messages=50,
            publisher_hold_seconds=1,
            publishes_per_second=1e6,
        )
    )
    topic = f"load/{uid('room')}"
    slow_id = uid("slow")
    slow = tcp_connect(gw.mqtt_port, slow_id, rcvbuf=4096)
    try:
        tcp_subscribe(slow, topic, 1)
        fast = peers(gw, uid("fast"))
        assert fast.subscribe([(topic, 1)]) == [1]
        pub = peers(gw, uid("pub"))
        count = 400
        mids = [pub.publish(topic, str(n).encode()) for n in range(count)]
        wait_for(lambda: len(pub.pubacks) == count, timeout=20)
        assert all(pub.pubacks[mid] == 0 for mid in mids)  # held a while, then released
        wait_for(lambda: len(fast.payloads(topic)) == count, timeout=20)
        seen = stats(gw)
        assert seen["publishers_held"] >= 1
        assert seen["slow_subscribers"] == 1
        assert seen["dropped_qos1"] > 0
        session = gw.call(lambda: gw.gateway.broker.sessions[slow_id])
        assert session.dropped == seen["dropped_qos1"]
        assert not presence(gw, "disconnected", slow_id)  # still connected
    finally:
        slow.close()


def test_slow_subscriber_reading_again_is_served(start_gateway, peers):
    """The slow mark is lifted once the subscriber catches up."""
    gw = start_gateway(
        Limits(busy_queue_messages=20, publisher_hold_seconds=1, publishes_per_second=1e6)
    )
    topic = f"load/{uid('room')}"
    sub = peers(gw, uid("sub"))
    assert sub.subscribe([(topic, 1)]) == [1]
    pub = peers(gw, uid("pub"))
    for n in range(200):
        pub.publish(topic, str(n).encode())
    wait_for(lambda: len(sub.payloads(topic)) == 200, timeout=20)
    session = gw.call(lambda: gw.gateway.broker.sessions[sub.client_id])
    assert not session.slow and gw.call(lambda: not gw.gateway.broker.hold.saturated)


def test_released_publishes_do_not_inherit_the_context_that_released_them(
    held_gateway, work, peers
):
    """The work that ends a saturation ends inside some message's callback (its trace id,
    its republish hop count): the held publishes let through must not carry them on."""
    gw = held_gateway
    topic = f"work/{uid('room')}"
    pub = peers(gw, uid("pub"))
    for n in range(HIGH + 5):
        pub.publish(topic, f"m{n}".encode())
    wait_for(lambda: stats(gw)["publishers_held"] == 1)

    def finish_in_a_traced_callback() -> None:
        context = contextvars.copy_context()
        context.run(current_trace.set, "the-releasing-message")
        context.run(work.finish_all_now)

    gw.call(finish_in_a_traced_callback)
    wait_for(lambda: len(pub.pubacks) == HIGH + 5)
    traces = [e.trace_id for e in gw.tapped if e.topic == topic]
    assert len(traces) == HIGH + 5
    assert "the-releasing-message" not in traces
