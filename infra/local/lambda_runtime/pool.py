"""Worker processes of one function: warm reuse, cold starts, the concurrency cap, timeouts.

Each invocation takes a slot (at most ``max_workers`` at once; the rest wait, as throttled
invocations wait in Lambda's async queue), then an idle warm worker or a freshly started one.
A worker that overruns the function's timeout is killed, never reused; the next invocation
starts a fresh one, so one stuck handler costs one slot for at most the timeout.

With a credentials provider, each worker starts with its own execution-role session in its
environment (see ``credentials.py``); an idle worker whose session would expire before an
invocation could finish (the function's timeout plus ``renew_margin``) is retired instead of
reused, and the invocation gets a fresh worker with fresh credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from infra.local.iam.sessions import DEFAULT_RENEW_MARGIN, usable_until
from infra.local.lambda_runtime import awsformat
from infra.local.lambda_runtime.credentials import KEY_VARIABLES, RoleCredentials
from infra.local.lambda_runtime.credentials import environment as credentials_environment
from infra.local.state_files import PRIVATE_UMASK, append_private
from lambdas.manifest import FunctionSpec

INIT_TIMEOUT_S = 10.0  # Lambda's limit on the init phase of on-demand functions
_STREAM_LIMIT = 64 * 1024 * 1024  # one protocol line carries a whole payload


@dataclass(frozen=True)
class InvokeResult:
    """The outcome of one invocation, as Invoke (RequestResponse) reports it."""

    ok: bool
    payload: object
    error: dict | None
    duration_ms: float
    request_id: str
    cold: bool
    init_ms: float | None = None


class _Worker:
    """One execution environment: a child process and its protocol pipes."""

    def __init__(self, process: asyncio.subprocess.Process, until: float) -> None:
        self.process = process
        self.init_ms: float | None = None
        # Epoch seconds after which no invocation may start here (its credentials' expiry
        # minus the function's timeout and the renewal margin).
        self.usable_until = until

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def request(self, line: bytes) -> dict | None:
        """Send one request line; the reply, or None if the worker died."""
        assert self.process.stdin is not None and self.process.stdout is not None
        try:
            self.process.stdin.write(line)
            await self.process.stdin.drain()
            reply = await self.process.stdout.readline()
        except (ConnectionError, ValueError):
            return None
        return json.loads(reply) if reply else None

    async def kill(self) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
        await self.process.wait()

    def kill_now(self) -> None:
        """Kill without waiting; asyncio's child watcher collects the process."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def reap(self, grace: float = 2.0) -> None:
        """Collect a worker that is exiting by itself, killing it only if it lingers.

        Killing a process that already exited makes Popen reap it behind asyncio's child
        watcher, which then reports exit status 255 instead of the real one.
        """
        try:
            await asyncio.wait_for(asyncio.shield(self.process.wait()), grace)
        except TimeoutError:
            await self.kill()


class FunctionPool:
    """All workers of one function."""

    def __init__(
        self,
        spec: FunctionSpec,
        environment: Mapping[str, str],
        log_path: Path,
        cwd: Path,
        max_workers: int,
        *,
        credentials: Callable[[], RoleCredentials] | None = None,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.spec = spec
        self.max_workers = max_workers
        self._environment = dict(environment)
        if credentials is not None:  # a worker signs with its own session, nothing inherited
            for key in KEY_VARIABLES:
                self._environment.pop(key, None)
        self._credentials = credentials
        self.renew_margin = renew_margin
        self._clock = clock
        self.retired = 0  # workers retired because their credentials were about to expire
        self._log_path = log_path
        self._cwd = cwd
        self._slots = asyncio.Semaphore(max_workers)
        self._idle: list[_Worker] = []
        self._workers: set[_Worker] = set()
        self._closed = False

    @property
    def worker_count(self) -> int:
        return len(self._workers)

    async def invoke(
        self, request_id: str, event_json: bytes, trace_id: str | None = None
    ) -> InvokeResult:
        async with self._slots:
            if self._closed:
                raise RuntimeError(f"function {self.spec.name} is stopped")
            worker = self._take_idle()
            cold = worker is None
            began = time.perf_counter()
            if worker is None:
                worker, init_error = await self._start_worker()
                if worker is None:
                    elapsed = (time.perf_counter() - began) * 1000
                    return InvokeResult(False, None, init_error, elapsed, request_id, True)
            try:
                result = await self._call(worker, request_id, event_json, cold, trace_id)
            except asyncio.CancelledError:
                # Its reply would still be in the pipe: never reuse it, and end it now.
                self._workers.discard(worker)
                worker.kill_now()
                raise
            if worker.alive and not self._closed:
                self._idle.append(worker)
            else:
                self._workers.discard(worker)
            return result

    def _take_idle(self) -> _Worker | None:
        """The most recently used idle worker that may still run an invocation; dead ones
        and those whose credentials would expire before an invocation could end leave."""
        now = self._clock()
        for worker in [w for w in self._idle if not w.alive or now >= w.usable_until]:
            self._idle.remove(worker)
            self._workers.discard(worker)
            if worker.alive:  # retired: a fresh worker gets a fresh session
                self.retired += 1
                worker.kill_now()
        return self._idle.pop() if self._idle else None

    async def _start_worker(self) -> tuple[_Worker | None, dict | None]:
        env = dict(self._environment)
        until = float("inf")
        if self._credentials is not None:
            try:
                credentials = self._credentials()
            except Exception as exc:  # the provider's bug: fail this cold start, say why
                return None, {
                    "errorType": "Runtime.Unknown",
                    "errorMessage": f"Could not assume the execution role: {exc}",
                }
            env.update(credentials_environment(credentials))
            until = usable_until(credentials, self.renew_margin + self.spec.timeout)
        stream = f"{time.strftime('%Y/%m/%d', time.gmtime())}/[$LATEST]{secrets.token_hex(16)}"
        env["AWS_LAMBDA_LOG_STREAM_NAME"] = stream
        env["IOTCHAT_LAMBDA_SPAWN_TIME"] = repr(time.time())
        # The function's log holds what handlers print (messages, requests): private.
        with append_private(self._log_path, binary=True) as log:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "infra.local.lambda_runtime.worker",
                self.spec.handler,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
                env=env,
                cwd=self._cwd,
                limit=_STREAM_LIMIT,
                start_new_session=True,  # Ctrl-C at the terminal goes to the stack, not here
                umask=PRIVATE_UMASK if os.name == "posix" else -1,  # what a handler writes
            )
        worker = _Worker(process, until)
        self._workers.add(worker)
        assert process.stdout is not None
        try:
            line = await asyncio.wait_for(process.stdout.readline(), INIT_TIMEOUT_S)
            hello = json.loads(line) if line else None
        except (TimeoutError, ValueError):
            hello = None
        except asyncio.CancelledError:
            self._workers.discard(worker)
            worker.kill_now()
            raise
        if hello is not None and hello.get("type") == "ready":
            worker.init_ms = hello["initMs"]
            return worker, None
        if hello is not None and hello.get("type") == "initError":
            await worker.reap()  # it exits by itself after reporting
        else:
            await worker.kill()
        self._workers.discard(worker)
        if hello is not None and hello.get("type") == "initError":
            return None, hello["error"]
        return None, {
            "errorType": "Runtime.Unknown",
            "errorMessage": "Unknown application error occurred (worker failed to start)",
        }

    async def _call(
        self,
        worker: _Worker,
        request_id: str,
        event_json: bytes,
        cold: bool,
        trace_id: str | None = None,
    ) -> InvokeResult:
        timeout_s = self.spec.timeout
        trace = b',"traceId":"%s"' % trace_id.encode() if trace_id else b""
        line = b'{"id":"%s","timeoutMs":%d%s,"event":%s}\n' % (
            request_id.encode(),
            timeout_s * 1000,
            trace,
            event_json,
        )
        began = time.perf_counter()
        init_ms = worker.init_ms if cold else None
        try:
            reply = await asyncio.wait_for(worker.request(line), timeout_s)
        except TimeoutError:
            memory = awsformat.peak_memory_mb(worker.process.pid)
            await worker.kill()
            elapsed = (time.perf_counter() - began) * 1000
            self._append_log(
                f"{awsformat.utc_stamp()} {request_id} {awsformat.timeout_message(timeout_s)}\n",
                awsformat.end_line(request_id),
                awsformat.report_line(
                    request_id, elapsed, self.spec.memory_size, memory, init_ms, "timeout"
                ),
            )
            error = awsformat.timeout_error(request_id, timeout_s)
            return InvokeResult(False, None, error, elapsed, request_id, cold, init_ms)
        if reply is None:
            await worker.reap()
            elapsed = (time.perf_counter() - began) * 1000
            error = awsformat.exit_error(request_id, worker.process.returncode)
            self._append_log(
                f"{error['errorMessage']}\n{error['errorType']}\n",
                awsformat.end_line(request_id),
                awsformat.report_line(
                    request_id, elapsed, self.spec.memory_size, 0, init_ms, "error"
                ),
            )
            return InvokeResult(False, None, error, elapsed, request_id, cold, init_ms)
        duration = float(reply.get("durationMs", 0.0))
        if reply.get("ok"):
            return InvokeResult(
                True, reply.get("payload"), None, duration, request_id, cold, init_ms
            )
        return InvokeResult(False, None, reply["error"], duration, request_id, cold, init_ms)

    def _append_log(self, *lines: str) -> None:
        with append_private(self._log_path) as log:
            log.write("".join(lines))

    async def stop(self) -> None:
        """Kill every worker, busy or idle; later invocations fail."""
        self._closed = True
        workers = list(self._workers)
        self._workers.clear()
        self._idle.clear()
        await asyncio.gather(*(worker.kill() for worker in workers))


def default_max_workers() -> int:
    """Workers per function when the manifest reserves no concurrency."""
    return max(4, os.cpu_count() or 1)
