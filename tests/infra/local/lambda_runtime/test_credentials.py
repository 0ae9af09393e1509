"""Workers run with their own execution-role session, renewed before it expires.

The sessions come from a fake issuer (the stack's is ``RoleSessions``; the end-to-end version,
with the API endpoint holding the keys to ``backend-lambda.json``, is
tests/e2e/security/test_lambda_role.py).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from infra.local.iam.sessions import Renewal
from infra.local.lambda_runtime import LambdaRuntime, ResourceNotFoundError
from infra.local.lambda_runtime.credentials import RenewingClient
from lambdas.manifest import FunctionSpec
from tests.support.clock import Clock

from .helpers import fn, process_gone, run_runtime

pytestmark = pytest.mark.timeout(60)


@dataclass(frozen=True)
class Session:
    access_key_id: str
    secret_access_key: str
    session_token: str | None
    expires_at: float | None


class Issuer:
    """A stand-in for the stack's role sessions: numbered keys, a fixed lifetime."""

    def __init__(self, lifetime: float, clock: Callable[[], float] = time.time) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self.issued: dict[str, Session] = {}
        self.sessions: list[str] = []  # session names, in order
        self._numbers = itertools.count(1)

    def __call__(self, spec: FunctionSpec) -> Session:
        number = next(self._numbers)
        session = Session(
            f"ASIATEST{number:012d}",
            f"secret-{number}",
            f"token-{number}",
            self.clock() + self.lifetime,
        )
        self.issued[session.access_key_id] = session
        self.sessions.append(spec.name)
        return session


def test_each_worker_signs_with_its_own_session_not_the_base_keys(tmp_path: Path) -> None:
    issuer = Issuer(lifetime=3600)
    functions = [fn("echo", "echo", reservedConcurrency=2)]

    async def body(runtime: LambdaRuntime):
        # Both invocations take a slot before either worker exists: two execution environments.
        return await asyncio.gather(runtime.invoke("echo", {}), runtime.invoke("echo", {}))

    first, second = run_runtime(tmp_path, functions, body, credentials=issuer)
    assert first.ok and second.ok and first.cold and second.cold
    assert first.payload["pid"] != second.payload["pid"]
    keys = {first.payload["env"]["AWS_ACCESS_KEY_ID"], second.payload["env"]["AWS_ACCESS_KEY_ID"]}
    assert keys == set(issuer.issued)  # two sessions, one per worker; "test" is gone
    for result in (first, second):
        env = result.payload["env"]
        session = issuer.issued[env["AWS_ACCESS_KEY_ID"]]
        assert env["AWS_SECRET_ACCESS_KEY"] == session.secret_access_key
        assert env["AWS_SESSION_TOKEN"] == session.session_token
    assert issuer.sessions == ["echo", "echo"]  # each session is named after the function


def test_without_a_provider_workers_keep_the_base_keys(tmp_path: Path) -> None:
    async def body(runtime: LambdaRuntime):
        with pytest.raises(ResourceNotFoundError):
            runtime.role_credentials("nope")
        return runtime.role_credentials("echo"), await runtime.invoke("echo", {})

    credentials, result = run_runtime(tmp_path, [fn("echo", "echo")], body)
    assert credentials is None
    assert result.payload["env"]["AWS_ACCESS_KEY_ID"] == "test"
    assert result.payload["env"]["AWS_SESSION_TOKEN"] is None


def test_a_worker_is_retired_before_its_session_could_expire_mid_invocation(
    tmp_path: Path,
) -> None:
    """A warm worker serves while its session outlives an invocation (timeout) plus the
    margin; after that the next invocation gets a fresh worker with a fresh session."""
    clock = Clock()
    issuer = Issuer(lifetime=1000, clock=clock)
    timeout, margin = 3, 100

    async def body(runtime: LambdaRuntime):
        first = await runtime.invoke("echo", {})
        clock.now += 1000 - margin - timeout - 0.5  # still usable for one more invocation
        warm = await runtime.invoke("echo", {})
        clock.now += 1.0  # no longer: it could expire before a 3 s invocation ends
        renewed = await runtime.invoke("echo", {})
        pool = runtime.pool("echo")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while not process_gone(first.payload["pid"]) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        return first, warm, renewed, pool.retired, pool.worker_count

    first, warm, renewed, retired, workers = run_runtime(
        tmp_path,
        [fn("echo", "echo", timeout=timeout)],
        body,
        credentials=issuer,
        renew_margin=margin,
        clock=clock,
    )
    key = first.payload["env"]["AWS_ACCESS_KEY_ID"]
    assert not warm.cold and warm.payload["env"]["AWS_ACCESS_KEY_ID"] == key
    assert renewed.cold and renewed.payload["pid"] != first.payload["pid"]
    assert renewed.payload["env"]["AWS_ACCESS_KEY_ID"] not in (key, None)
    assert (retired, workers) == (1, 1)
    assert process_gone(first.payload["pid"])  # the retired worker does not linger


def test_short_lived_sessions_are_renewed_and_never_used_expired(tmp_path: Path) -> None:
    """Real time, a 2.5 s session, a 1 s timeout and a 0.5 s margin: a worker serves for about
    a second, then a new one takes over; no invocation ever ran with an expired key."""
    issuer = Issuer(lifetime=2.5)

    async def body(runtime: LambdaRuntime):
        used: list[tuple[str, float]] = []  # key, when the invocation returned
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while len({key for key, _ in used}) < 3 and loop.time() < deadline:
            result = await runtime.invoke("echo", {})
            assert result.ok, result.error
            used.append((result.payload["env"]["AWS_ACCESS_KEY_ID"], time.time()))
            await asyncio.sleep(0.05)  # pacing only: a few invocations per session
        return used

    used = run_runtime(
        tmp_path,
        [fn("echo", "echo", timeout=1)],
        body,
        credentials=issuer,
        renew_margin=0.5,
    )
    assert len({key for key, _ in used}) >= 3  # renewed at least twice
    for key, returned in used:
        expires_at = issuer.issued[key].expires_at
        assert expires_at is not None and returned < expires_at
    # Several invocations per session: a worker is reused while it is safe to.
    assert len(used) > 2 * len({key for key, _ in used})


def test_a_renewing_client_gets_a_new_session_before_the_old_one_expires() -> None:
    """What an event source mapping reads the stream with: rebuilt ``margin`` seconds before
    its session expires, and never before."""
    clock = Clock()
    issuer = Issuer(lifetime=60, clock=clock)
    spec = FunctionSpec("stream", "tests.handler")
    built: list[Session] = []

    def build(credentials: object) -> object:
        assert isinstance(credentials, Session)
        built.append(credentials)
        return object()

    client = RenewingClient(lambda: issuer(spec), build, renewal=Renewal(10, clock))
    first = client.get()
    assert client.get() is first and len(built) == 1
    clock.now += 49.9
    assert client.get() is first
    clock.now += 0.1  # 10 s before expiry
    second = client.get()
    assert second is not first and len(built) == 2
    assert built[1].access_key_id != built[0].access_key_id
    assert built[1].expires_at == clock.now + 60
    assert client.renewals == 2


def test_a_renewing_client_without_sessions_is_built_once() -> None:
    built: list[object] = []
    client = RenewingClient(lambda: None, lambda credentials: built.append(credentials) or 1)
    assert client.get() == client.get() == 1
    assert built == [None]
