"""AWS ends every WebSocket connection after 24 hours; the limit is configurable for tests."""

from __future__ import annotations

import pytest

from infra.local.gateway import Limits
from tests.support.paho import WSS_V5, WSS_V311, unique, wait_event

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("combo", [WSS_V311, WSS_V5], ids=lambda c: c.id)
def test_websocket_connection_ends_at_its_ttl(start_gateway, clients, combo):
    gateway = start_gateway(Limits(websocket_ttl_seconds=1))
    observer = clients.observer(gateway, "$aws/events/presence/#")
    client = clients.connected(gateway, combo, unique("ttl"))
    [event] = wait_event(observer, "disconnected", client.client_id, timeout=10)
    assert event["disconnectReason"] == "WEBSOCKET_TTL_EXPIRATION"
    assert event["clientInitiatedDisconnect"] is False
    client.wait(lambda: not client.connected, 5, "client sees the connection end")
