"""The loopback-only plain WebSocket listener: same SigV4 handshake as wss, no TLS."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest

from infra.local.gateway import Gateway, GatewayConfig
from infra.local.sigv4 import presign_url
from tests.support.stack import GatewayHandle
from tests.support.waiting import wait_for


def ws_client(
    gateway: GatewayHandle, query: str
) -> tuple[mqtt.Client, list[mqtt.MQTTMessage], list[int]]:
    messages: list[mqtt.MQTTMessage] = []
    connacks: list[int] = []
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id="plain-ws",
        transport="websockets",
        reconnect_on_failure=False,
    )
    client.ws_set_options(path="/mqtt?" + query)
    client.on_message = lambda c, u, m: messages.append(m)
    client.on_connect = lambda c, u, f, rc, p: connacks.append(rc.value)
    return client, messages, connacks


def test_signed_plain_websocket_round_trip(gateway: GatewayHandle) -> None:
    port = gateway.gateway.ports["ws"]
    url = presign_url(f"127.0.0.1:{port}", "test", "test", region="us-east-1", scheme="ws")
    client, messages, connacks = ws_client(gateway, urlsplit(url).query)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        wait_for(lambda: connacks == [0])
        client.subscribe("plain/ws", 1)
        wait_for(lambda: client.publish("plain/ws", b"hi", 1).rc == 0 and messages)
        assert messages[0].payload == b"hi"
    finally:
        client.disconnect()
        client.loop_stop()


def test_unsigned_plain_websocket_is_refused(gateway: GatewayHandle) -> None:
    port = gateway.gateway.ports["ws"]
    client, _, connacks = ws_client(gateway, "")
    with pytest.raises(Exception, match=r"403|handshake|WebSocket"):
        client.connect("127.0.0.1", port)
    assert connacks == []


def test_plain_websocket_only_on_loopback() -> None:
    gateway = Gateway(GatewayConfig(host="0.0.0.0", mqtt_port=None, ws_port=0))
    with pytest.raises(ValueError, match="loopback"):
        asyncio.run(gateway.start())
