"""Shared fixtures: a real gateway on loopback ports, running in its own thread and loop.

Tests talk to it only over sockets, with real clients (paho-mqtt, awsiotsdk), exactly as a
user's client would; the handle also exposes the broker for the few assertions that need to
look inside (memory bounds, for instance).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
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
from infra.local.registry import Registry, RegistryCredentialStore
from infra.local.stack import LocalStack, StackOptions

if sys.version_info < (3, 11, 8):
    # CPython 3.11 before 3.11.8 (gh-106905) keeps one AST recursion counter per interpreter:
    # two threads building ASTs at once fail with "SystemError: AST constructor recursion
    # depth mismatch". Our stacks run in background threads and log exceptions, and 3.11's
    # traceback formatting parses each source line to place its carets, while pytest parses
    # modules it imports in the main thread. Tracebacks without carets avoid the race.
    traceback._extract_caret_anchors_from_line_segment = lambda segment: None  # type: ignore[attr-defined]


@dataclass
class GatewayHandle:
    gateway: Gateway
    loop: asyncio.AbstractEventLoop
    ca: LocalCA
    credentials: RegistryCredentialStore
    authorizer: Any  # AdminOnlyAuthorizer unless a test passes another
    registry: Registry
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
def start_gateway(
    local_ca: LocalCA, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., GatewayHandle]]:
    """Factory: ``start_gateway(limits=Limits(...))`` runs a gateway with all three listeners."""
    started: list[tuple[GatewayHandle, threading.Thread]] = []

    def start(limits: Limits | None = None, authorizer: Any = None) -> GatewayHandle:
        registry = Registry.open(tmp_path_factory.mktemp("registry"))
        credentials = RegistryCredentialStore(StaticCredentialStore(), registry)
        authorizer = authorizer or AdminOnlyAuthorizer()
        config = GatewayConfig(
            mqtt_port=0,
            mqtts_port=0,
            wss_port=0,
            ws_port=0,
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
                gateway, asyncio.get_running_loop(), local_ca, credentials, authorizer, registry
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


@dataclass
class InProcessStack:
    """A whole local stack on its own thread and loop; clients still use loopback sockets."""

    stack: LocalStack
    loop: asyncio.AbstractEventLoop
    info: dict[str, Any]
    tapped: list[PublishEvent] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return self.info["api"]["endpoint"]

    def taps_on(self, topic: str) -> list[PublishEvent]:
        return [event for event in list(self.tapped) if event.topic == topic]

    def client(
        self, service: str, key: str = "test", secret: str = "test", token: str | None = None
    ) -> Any:
        """A boto3 client for the edge API, as any AWS SDK user of the stack makes one."""
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.info["region"],
            aws_access_key_id=key,
            aws_secret_access_key=secret,
            aws_session_token=token,
        )

    def iot_data(self, key: str = "test", secret: str = "test", token: str | None = None) -> Any:
        return self.client("iot-data", key, secret, token)

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the stack's loop; a coroutine result is awaited there."""
        future: Future[Any] = Future()

        def run() -> None:
            try:
                value = fn()
            except BaseException as exc:  # pragma: no cover - re-raised in the caller
                future.set_exception(exc)
                return
            if asyncio.iscoroutine(value):
                task = asyncio.ensure_future(value)
                task.add_done_callback(
                    lambda t: (
                        future.set_exception(t.exception())
                        if t.exception()
                        else future.set_result(t.result())
                    )
                )
            else:
                future.set_result(value)

        self.loop.call_soon_threadsafe(run)
        return future.result(timeout)


def stack_options(state_dir: Path, **overrides: Any) -> StackOptions:
    """Options for a test stack: every port ephemeral."""
    ports = dict(mqtt_port=0, mqtts_port=0, wss_port=0, ws_port=0, api_port=0, web_port=0)
    return StackOptions(state_dir=state_dir, **{**ports, **overrides})


@contextmanager
def run_stack_in_thread(options: StackOptions) -> Iterator[InProcessStack]:
    stack = LocalStack(options)
    ready: Future[InProcessStack] = Future()
    stop = threading.Event()

    async def main() -> None:
        try:
            await stack.start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        handle = InProcessStack(stack, asyncio.get_running_loop(), stack.describe())
        assert stack.gateway is not None
        stack.gateway.add_tap(handle.tapped.append)
        ready.set_result(handle)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        await stack.stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(30)
    finally:
        stop.set()
        thread.join(15)
