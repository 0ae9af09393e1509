"""A local stack, or a bare gateway, running on its own thread and event loop in the test process.

Clients still reach them only over loopback sockets, exactly as a user's client would; the
handles also expose the running objects for the few assertions that need to look inside
(memory bounds, a rule's state) and run code on their loop with :func:`call_in_loop`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from infra.local.ca import LocalCA
from infra.local.cognito import LocalCognito
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

if TYPE_CHECKING:
    import pytest

T = TypeVar("T")
LOOPBACK = "127.0.0.1"


def call_in_loop(loop: asyncio.AbstractEventLoop, fn: Callable[[], Any], timeout: float) -> Any:
    """Run ``fn`` on ``loop`` (thread-safe) and return its result; a coroutine is awaited there."""
    future: Future[Any] = Future()

    def finish(task: asyncio.Future[Any]) -> None:
        error = task.exception()
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(task.result())

    def run() -> None:
        try:
            value = fn()
        except BaseException as exc:  # pragma: no cover - re-raised in the caller
            future.set_exception(exc)
            return
        if asyncio.iscoroutine(value):
            asyncio.ensure_future(value).add_done_callback(finish)
        else:
            future.set_result(value)

    loop.call_soon_threadsafe(run)
    return future.result(timeout)


@contextmanager
def serve_in_thread(
    start: Callable[[], Awaitable[T]],
    stop: Callable[[], Awaitable[None]],
    ready_timeout: float,
    stop_timeout: float,
) -> Iterator[T]:
    """Run ``start()`` on a new loop in a daemon thread and yield its result; on the way out,
    run ``stop()`` on that loop and wait for the thread. A failed start is raised here."""
    ready: Future[T] = Future()
    stopping: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []

    async def main() -> None:
        try:
            value = await start()
        except BaseException as exc:
            ready.set_exception(exc)
            return
        event = asyncio.Event()
        stopping.append((asyncio.get_running_loop(), event))
        ready.set_result(value)
        await event.wait()
        await stop()

    thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
    thread.start()
    try:
        yield ready.result(ready_timeout)
    finally:
        for loop, event in stopping:
            loop.call_soon_threadsafe(event.set)
        thread.join(stop_timeout)


def aws_client(
    info: dict[str, Any],
    service: str,
    key: str = "test",
    secret: str = "test",
    token: str | None = None,
) -> Any:
    """A boto3 client for a stack's edge API (``info`` is its stack file), as any AWS SDK user
    makes one; the default key is the local admin's."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=info["api"]["endpoint"],
        region_name=info["region"],
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        aws_session_token=token,
    )


# ---------------------------------------------------------------------- a bare gateway


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
        return LOOPBACK

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
        return call_in_loop(self.loop, fn, timeout)


@contextmanager
def gateway_in_thread(
    ca: LocalCA, registry_dir: Path, limits: Limits | None = None, authorizer: Any = None
) -> Iterator[GatewayHandle]:
    """A gateway with all three listeners on ephemeral ports (admin-only unless ``authorizer``
    says otherwise); every publish it routes is recorded in the handle's ``tapped``."""
    registry = Registry.open(registry_dir)
    credentials = RegistryCredentialStore(StaticCredentialStore(), registry)
    authorizer = authorizer or AdminOnlyAuthorizer()
    config = GatewayConfig(
        mqtt_port=0,
        mqtts_port=0,
        wss_port=0,
        ws_port=0,
        mtls_context=ca.server_ssl_context(require_client_cert=True),
        wss_context=ca.server_ssl_context(require_client_cert=False),
        limits=limits or Limits(),
    )
    gateway = Gateway(config, credentials=credentials, authorizer=authorizer)

    async def start() -> GatewayHandle:
        await gateway.start()
        loop = asyncio.get_running_loop()
        handle = GatewayHandle(gateway, loop, ca, credentials, authorizer, registry)
        gateway.add_tap(handle.tapped.append)
        return handle

    with serve_in_thread(start, gateway.stop, ready_timeout=10, stop_timeout=10) as handle:
        yield handle


# ---------------------------------------------------------------------- a whole stack


@dataclass
class InProcessStack:
    """A whole local stack on its own thread and loop; clients still use loopback sockets."""

    stack: LocalStack
    loop: asyncio.AbstractEventLoop
    info: dict[str, Any]
    tapped: list[PublishEvent] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return str(self.info["api"]["endpoint"])

    @property
    def ca(self) -> LocalCA:
        """The stack's certificate authority (there from start to stop)."""
        assert self.stack.ca is not None, "the stack is not running"
        return self.stack.ca

    @property
    def gateway(self) -> Gateway:
        """The stack's device gateway (there from start to stop)."""
        assert self.stack.gateway is not None, "the stack is not running"
        return self.stack.gateway

    @property
    def cognito(self) -> LocalCognito:
        """The stack's local Cognito (there from start to stop)."""
        assert self.stack.cognito is not None, "the stack is not running"
        return self.stack.cognito

    def taps_on(self, topic: str) -> list[PublishEvent]:
        return [event for event in list(self.tapped) if event.topic == topic]

    def client(
        self, service: str, key: str = "test", secret: str = "test", token: str | None = None
    ) -> Any:
        """A boto3 client for the edge API, as any AWS SDK user of the stack makes one."""
        return aws_client(self.info, service, key, secret, token)

    def iot_data(self, key: str = "test", secret: str = "test", token: str | None = None) -> Any:
        return self.client("iot-data", key, secret, token)

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run ``fn`` on the stack's loop; a coroutine result is awaited there."""
        return call_in_loop(self.loop, fn, timeout)


def stack_options(state_dir: Path, **overrides: Any) -> StackOptions:
    """Options for a test stack: every port ephemeral."""
    ports = dict(mqtt_port=0, mqtts_port=0, wss_port=0, ws_port=0, api_port=0, web_port=0)
    return StackOptions(state_dir=state_dir, **{**ports, **overrides})


@contextmanager
def run_stack_in_thread(options: StackOptions) -> Iterator[InProcessStack]:
    """The local stack for ``options``, started and stopped around the ``with`` block."""
    stack = LocalStack(options)

    async def start() -> InProcessStack:
        await stack.start()
        handle = InProcessStack(stack, asyncio.get_running_loop(), stack.describe())
        assert stack.gateway is not None
        stack.gateway.add_tap(handle.tapped.append)
        return handle

    with serve_in_thread(start, stack.stop, ready_timeout=30, stop_timeout=15) as handle:
        yield handle


@contextmanager
def fresh_stack(
    tmp_path_factory: pytest.TempPathFactory, name: str, **overrides: Any
) -> Iterator[InProcessStack]:
    """A stack on a thread whose state is in a new temporary folder ``name``: the body of a
    test module's stack fixture. ``overrides`` are :func:`stack_options`' (limits, lifetimes)."""
    options = stack_options(tmp_path_factory.mktemp(name) / "state", **overrides)
    with run_stack_in_thread(options) as stack:
        yield stack


def post_json(
    stack: InProcessStack, body: bytes, headers: dict[str, str]
) -> tuple[int, dict[str, Any]]:
    """POST ``body`` to the stack's API endpoint exactly as given (no signing, no retries):
    the status and the JSON answer, errors included."""
    request = urllib.request.Request(stack.endpoint + "/", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


__all__ = [
    "GatewayHandle",
    "InProcessStack",
    "aws_client",
    "call_in_loop",
    "fresh_stack",
    "gateway_in_thread",
    "post_json",
    "run_stack_in_thread",
    "serve_in_thread",
    "stack_options",
]
