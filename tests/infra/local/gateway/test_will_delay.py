"""MQTT 5 Will Delay Interval: the will goes out when the delay passes or the session ends,
whichever comes first (MQTT 5 3.1.3.2.2), and not at all if the session is resumed in time.

The delays in these tests are long (10 minutes) on purpose: a will that arrives within the
few seconds a test waits can only have been sent because its session ended.
"""

from __future__ import annotations

import pytest

from tests.support.paho import TCP_V5, WSS_V5, ClientFactory, Combo, Will, combos, unique
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)

LONG_DELAY = 600


@pytest.mark.parametrize("combo", combos([TCP_V5, WSS_V5]))
def test_with_session_expiry_0_the_will_arrives_at_once(
    gateway: GatewayHandle, clients: ClientFactory, combo: Combo
) -> None:
    will_topic = unique("will")
    observer = clients.observer(gateway, will_topic)
    client = clients.connected(
        gateway, combo, will=Will(will_topic, b"gone", qos=1, delay=LONG_DELAY)
    )
    assert observer.on_topic(will_topic) == []
    client.drop()
    message = observer.wait_message(will_topic)  # seconds, not the 10 minutes of the delay
    assert (message.payload, message.qos) == (b"gone", 1)


def test_the_will_arrives_when_the_session_expires_before_the_delay(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    will_topic = unique("will")
    observer = clients.observer(gateway, will_topic)
    client = clients.connected(
        gateway,
        TCP_V5,
        clean=False,
        session_expiry=1,
        will=Will(will_topic, b"expired", qos=1, delay=LONG_DELAY),
    )
    client.drop()
    message = observer.wait_message(will_topic)  # the session's second, not the delay
    assert message.payload == b"expired"


def test_a_resumed_session_takes_its_will_back(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    will_topic = unique("will")
    client_id = unique("resumer")
    persistent = {"clean": False, "session_expiry": LONG_DELAY}
    first = clients.connected(
        gateway,
        TCP_V5,
        client_id,
        will=Will(will_topic, b"gone", qos=1, delay=LONG_DELAY),
        **persistent,
    )
    first.drop()

    def waiting_will() -> bool:
        session = gateway.gateway.broker.sessions.get(client_id)
        return session is not None and session.pending_will is not None

    wait_for(lambda: gateway.call(waiting_will))  # the will waits out its delay...
    again = clients(gateway, TCP_V5, client_id, **persistent)
    assert again.connect() == (0, True)
    assert not gateway.call(waiting_will)  # ...and the resumed session has cancelled it
    # And nothing was published on the will topic meanwhile.
    assert not [e for e in gateway.tapped if e.topic == will_topic]


def test_a_clean_start_ends_the_waiting_session_and_sends_its_will(
    gateway: GatewayHandle, clients: ClientFactory
) -> None:
    will_topic = unique("will")
    client_id = unique("restarter")
    observer = clients.observer(gateway, will_topic)
    first = clients.connected(
        gateway,
        TCP_V5,
        client_id,
        clean=False,
        session_expiry=LONG_DELAY,
        will=Will(will_topic, b"session over", qos=1, delay=LONG_DELAY),
    )
    first.drop()
    assert observer.on_topic(will_topic) == []
    fresh = clients(gateway, TCP_V5, client_id, clean=True)
    assert fresh.connect() == (0, False)
    assert observer.wait_message(will_topic).payload == b"session over"
