"""Persistent MQTT sessions outlive a clean gateway stop: saved to a file, restored at start
with their subscriptions, queued QoS 1 messages and the expiry clock still running."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from infra.local.gateway import Gateway, GatewayConfig, Limits
from tests.support.stack import call_in_loop, serve_in_thread
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(60)


@dataclass
class RunningGateway:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop

    @property
    def ports(self) -> dict[str, int]:
        return self.gateway.ports


@contextmanager
def gateway(
    session_file: Path, port: int = 0, limits: Limits | None = None
) -> Iterator[RunningGateway]:
    """A gateway (plain TCP only) on its own loop; stopped cleanly on exit."""
    config = GatewayConfig(mqtt_port=port, session_file=session_file, limits=limits or Limits())
    gw = Gateway(config)

    async def start() -> RunningGateway:
        await gw.start()
        return RunningGateway(gw, asyncio.get_running_loop())

    with serve_in_thread(start, gw.stop, ready_timeout=10, stop_timeout=10) as running:
        yield running


def publish(gw: RunningGateway, topic: str, payload: bytes, qos: int) -> None:
    call_in_loop(gw.loop, lambda: gw.gateway.publish(topic, payload, qos=qos), 5)


class Subscriber:
    """A paho MQTT 3.1.1 client with cleanSession=false, recording payloads and CONNACKs."""

    def __init__(self, port: int, client_id: str) -> None:
        self.received: list[bytes] = []
        self.session_present: list[bool] = []
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            reconnect_on_failure=False,
        )
        client.username_pw_set("test", "test")
        client.on_connect = lambda c, u, flags, rc, p: self.session_present.append(
            bool(flags.session_present)
        )
        client.on_message = lambda c, u, msg: self.received.append(bytes(msg.payload))
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        wait_for(lambda: self.session_present, 5)
        self.paho = client

    def subscribe(self, topic: str) -> None:
        acked: list[int] = []
        self.paho.on_subscribe = lambda c, u, mid, codes, p: acked.append(mid)
        self.paho.subscribe(topic, 1)
        wait_for(lambda: acked, 5)

    def disconnect(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


def test_queued_messages_reach_a_persistent_session_after_a_clean_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway" / "sessions.json"
    with gateway(path) as gw:
        port = gw.ports["mqtt"]
        sub = Subscriber(port, "keeper")
        sub.subscribe("chat/pub/lobby")
        sub.disconnect()
        for n in range(3):
            publish(gw, "chat/pub/lobby", b"queued %d" % n, 1)
        publish(gw, "chat/pub/lobby", b"qos0 is not queued", 0)
    saved = json.loads(path.read_text())
    assert [s["clientId"] for s in saved["sessions"]] == ["keeper"]
    assert path.stat().st_mode & 0o777 == 0o600  # users' messages: owner only

    with gateway(path, port) as gw:
        assert not path.exists()  # loaded: a crash from now on must not resurrect it
        publish(gw, "chat/pub/lobby", b"after the restart", 1)
        sub = Subscriber(port, "keeper")
        try:
            wait_for(lambda: len(sub.received) == 4, 5)
            assert sub.session_present == [True]
            assert sub.received == [b"queued 0", b"queued 1", b"queued 2", b"after the restart"]
        finally:
            sub.disconnect()


def test_a_session_whose_expiry_passed_while_the_gateway_was_down_is_gone(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.json"
    limits = Limits(session_expiry_default=1)
    with gateway(path, limits=limits) as gw:
        port = gw.ports["mqtt"]
        sub = Subscriber(port, "short-lived")
        sub.subscribe("chat/pub/lobby")
        sub.disconnect()
        publish(gw, "chat/pub/lobby", b"too late", 1)
    expires_at = json.loads(path.read_text())["sessions"][0]["expiresAt"]
    wait_for(lambda: time.time() > expires_at, 5, 0.05)  # the clock runs while it is down
    with gateway(path, port, limits=limits):
        sub = Subscriber(port, "short-lived")
        try:
            assert sub.session_present == [False]
            assert sub.received == []
        finally:
            sub.disconnect()
