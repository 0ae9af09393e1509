"""Shared fixtures: a real gateway on loopback ports, running in its own thread and loop.

Tests talk to it only over sockets, with real clients (paho-mqtt, awsiotsdk), exactly as a
user's client would; the handle also exposes the broker for the few assertions that need to
look inside (memory bounds, for instance).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.local.ca import LocalCA
from infra.local.gateway import (
    AdminOnlyAuthorizer,
    Gateway,
    GatewayConfig,
    Limits,
    PublishEvent,
    StaticCredentialStore,
)


@dataclass
class GatewayHandle:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    ca: LocalCA
    credentials: StaticCredentialStore
    authorizer: AdminOnlyAuthorizer
    tapped: list[PublishEvent] = field(default_factory=list)

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def mqtt_port(self) -> int:
        return self.gateway.ports["mqtt"]

    @property
    def mqtts_port(self) -> int:
        return self.gateway.ports["mqtts"]

    @property
    def wss_port(self) -> int:
        return self.gateway.ports["wss"]

    @property
    def ca_file(self) -> str:
        return str(self.ca.ca_path)

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the gateway's loop and return its result (thread-safe)."""
        result: Future[Any] = Future()

        def run() -> None:
            try:
                result.set_result(fn())
            except BaseException as exc:  # pragma: no cover - re-raised in the caller
                result.set_exception(exc)

        self.loop.call_soon_threadsafe(run)
        return result.result(timeout)


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> Any:
    """Poll until ``predicate()`` is truthy; fail the test with a clear message at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


@pytest.fixture(scope="session")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    ca = LocalCA.load_or_create(tmp_path_factory.mktemp("ca"))
    ca.server_certificate(hostnames=("localhost",), ips=("127.0.0.1",))
    return ca


@pytest.fixture
def start_gateway(local_ca: LocalCA) -> Iterator[Callable[..., GatewayHandle]]:
    """Factory: ``start_gateway(limits=Limits(...))`` runs a gateway with all three listeners."""
    started: list[tuple[GatewayHandle, threading.Thread]] = []

    def start(limits: Limits | None = None) -> GatewayHandle:
        credentials = StaticCredentialStore()
        authorizer = AdminOnlyAuthorizer()
        config = GatewayConfig(
            mqtt_port=0,
            mqtts_port=0,
            wss_port=0,
            mtls_context=local_ca.server_ssl_context(require_client_cert=True),
            wss_context=local_ca.server_ssl_context(require_client_cert=False),
            limits=limits or Limits(),
        )
        gateway = Gateway(config, credentials=credentials, authorizer=authorizer)
        ready: Future[GatewayHandle] = Future()
        stop_event: list[asyncio.Event] = []

        async def main() -> None:
            try:
                await gateway.start()
            except BaseException as exc:
                ready.set_exception(exc)
                return
            handle = GatewayHandle(
                gateway, asyncio.get_running_loop(), local_ca, credentials, authorizer
            )
            gateway.add_tap(handle.tapped.append)
            stop_event.append(asyncio.Event())
            ready.set_result(handle)
            await stop_event[0].wait()
            await gateway.stop()

        thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        thread.start()
        handle = ready.result(10)
        handle.stop_event = stop_event[0]  # type: ignore[attr-defined]
        started.append((handle, thread))
        return handle

    yield start
    for handle, thread in started:
        handle.loop.call_soon_threadsafe(handle.stop_event.set)  # type: ignore[attr-defined]
        thread.join(10)


@pytest.fixture
def gateway(start_gateway: Callable[..., GatewayHandle]) -> GatewayHandle:
    """A gateway with AWS's default limits."""
    return start_gateway()


@pytest.fixture
def tmp_state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"
