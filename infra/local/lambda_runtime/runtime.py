"""The local Lambda service: invoke (RequestResponse and Event) over the manifest's functions.

Asynchronous invocations (``invoke_async``, what IoT rule lambda actions use) are queued and run
in the background; a failed one is retried twice, then recorded in the function's on-failure
destination, ``<state_dir>/lambda/<name>/failures.jsonl``, one AWS invocation record per line.
AWS waits 1 minute and then 2 minutes between the attempts; locally the delays default to 1 s
and 2 s (``retry_delays``) so a developer sees the outcome while still looking.

Given a ``credentials`` provider, every worker runs with its own temporary credentials for the
function's execution role, never with keys from ``env_base`` (see ``credentials.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from infra.local.iam.sessions import DEFAULT_RENEW_MARGIN
from infra.local.lambda_runtime import awsformat
from infra.local.lambda_runtime.credentials import CredentialsProvider, RoleCredentials
from infra.local.lambda_runtime.errors import InvalidRequestContentError, ResourceNotFoundError
from infra.local.lambda_runtime.pool import FunctionPool, InvokeResult, default_max_workers
from infra.local.state_files import append_private, private_dir
from infra.local.trace import TraceLog, current_trace
from lambdas import arns
from lambdas.manifest import FunctionSpec, Manifest

log = logging.getLogger(__name__)

CODE_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_RETRY_DELAYS = (1.0, 2.0)
_HOST_KEYS = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")


def logs_dir(state_dir: Path) -> Path:
    return state_dir / "logs"


def log_path(state_dir: Path, name: str) -> Path:
    """Where a function's log lives; ``iotchat logs`` reads the same file."""
    return logs_dir(state_dir) / f"{name}.log"


def failures_path(state_dir: Path, name: str) -> Path:
    return state_dir / "lambda" / name / "failures.jsonl"


def encode_payload(payload: object) -> bytes:
    """The event as JSON bytes; bytes and str are taken as JSON text already, as Invoke does."""
    if isinstance(payload, bytes | bytearray | str):
        text = payload.decode() if isinstance(payload, bytes | bytearray) else payload
        try:
            json.loads(text or "null")
        except ValueError as exc:
            raise InvalidRequestContentError(
                f"Could not parse request body into json: {exc}"
            ) from exc
        return (text or "null").encode()
    try:
        return json.dumps(payload, separators=(",", ":"), default=_json_default).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidRequestContentError(str(exc)) from exc


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):  # IoT SQL's exact decimals
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


class LambdaRuntime:
    """Every function of a manifest, each in its own worker processes."""

    def __init__(
        self,
        manifest: Manifest,
        state_dir: Path,
        env_base: Mapping[str, str],
        *,
        retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        code_root: Path = CODE_ROOT,
        region: str = arns.REGION,
        account_id: str = arns.ACCOUNT_ID,
        credentials: CredentialsProvider | None = None,
        renew_margin: float = DEFAULT_RENEW_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``credentials(spec)`` issues a new session of the function's execution role; each
        worker (and each event source mapping's client) asks for its own. Without it, workers
        sign with whatever keys ``env_base`` holds (unit tests, benchmarks)."""
        if len(retry_delays) != 2:
            raise ValueError("retry_delays: Lambda retries an event twice; give two delays")
        self.manifest = manifest
        self.state_dir = Path(state_dir)
        self.retry_delays = tuple(retry_delays)
        self._env_base = dict(env_base)
        self._code_root = code_root
        self._region = region
        self._account_id = account_id
        self._credentials = credentials
        self.renew_margin = renew_margin
        self._clock = clock
        self._pools: dict[str, FunctionPool] = {}
        self._events: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        # Where each asynchronous invocation's outcome is recorded (the stack's trace log).
        self.trace: TraceLog | None = None

    # -- names ----------------------------------------------------------------------------
    def function_names(self) -> list[str]:
        return self.manifest.names()

    def arn(self, name: str) -> str:
        return arns.function_arn(name, self._region, self._account_id)

    def resolve(self, name_or_arn: str) -> str | None:
        """The function's name for a name, partial ARN or ARN (qualifier tolerated), or None."""
        name = arns.function_name(name_or_arn)
        return name if name is not None and self.manifest.get(name) is not None else None

    def pool(self, name: str) -> FunctionPool:
        return self._pools[name]

    def role_credentials(self, name: str) -> RoleCredentials | None:
        """A new session of function ``name``'s execution role (None without a provider)."""
        spec = self.manifest.get(name)
        if spec is None:
            raise ResourceNotFoundError(f"Function not found: {self.arn(name)}")
        return None if self._credentials is None else self._credentials(spec)

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        """Prepare every function's pool; workers start on first invocation (cold start)."""
        self._loop = asyncio.get_running_loop()
        private_dir(logs_dir(self.state_dir))
        for spec in self.manifest:
            self._pools[spec.name] = FunctionPool(
                spec,
                self._environment(spec),
                log_path(self.state_dir, spec.name),
                self._code_root,
                spec.reserved_concurrency or default_max_workers(),
                credentials=self._session_for(spec),
                renew_margin=self.renew_margin,
                clock=self._clock,
            )

    async def stop(self) -> None:
        """Drop queued events and kill every worker."""
        for task in list(self._events):
            task.cancel()
        await asyncio.gather(*self._events, return_exceptions=True)
        await asyncio.gather(*(pool.stop() for pool in self._pools.values()))

    def _session_for(self, spec: FunctionSpec) -> Callable[[], RoleCredentials] | None:
        provider = self._credentials
        return None if provider is None else lambda: provider(spec)

    def _environment(self, spec: FunctionSpec) -> dict[str, str]:
        """Host basics < edge-API settings < the function's own < what Lambda itself sets."""
        env = {key: os.environ[key] for key in _HOST_KEYS if key in os.environ}
        # The developer's ~/.aws files must not leak into a handler's boto3 configuration.
        env["AWS_CONFIG_FILE"] = os.devnull
        env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
        env.update(self._env_base)
        env.update(spec.environment)
        region = self._env_base.get("AWS_REGION", self._region)
        env.update(
            {
                "AWS_REGION": region,
                "AWS_DEFAULT_REGION": self._env_base.get("AWS_DEFAULT_REGION", region),
                "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
                "AWS_LAMBDA_FUNCTION_NAME": spec.name,
                "AWS_LAMBDA_FUNCTION_VERSION": awsformat.VERSION,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
                "IOTCHAT_LAMBDA_FUNCTION_ARN": self.arn(spec.name),
                "LAMBDA_TASK_ROOT": str(self._code_root),
                "PYTHONPATH": str(self._code_root),
                "TZ": ":UTC",
                "_HANDLER": spec.handler,
            }
        )
        return env

    def _pool_for(self, name_or_arn: str) -> FunctionPool:
        name = self.resolve(name_or_arn)
        if name is None or name not in self._pools:
            raise ResourceNotFoundError(
                f"Function not found: {self.arn(arns.function_name(name_or_arn) or name_or_arn)}"
            )
        return self._pools[name]

    # -- invoke -----------------------------------------------------------------------------
    async def invoke(self, name_or_arn: str, payload: object) -> InvokeResult:
        """Invoke and wait (RequestResponse). Unknown function or non-JSON payload: raises."""
        pool = self._pool_for(name_or_arn)
        return await pool.invoke(str(uuid.uuid4()), encode_payload(payload))

    def invoke_blocking(
        self, name_or_arn: str, payload: object, timeout: float | None = None
    ) -> InvokeResult:
        """``invoke`` from another thread (IoT SQL's ``aws_lambda()`` runs off the loop)."""
        if self._loop is None:
            raise RuntimeError("the Lambda runtime is not started")
        if _running_loop() is self._loop:
            raise RuntimeError("invoke_blocking would block the runtime's own loop; use invoke")
        future = asyncio.run_coroutine_threadsafe(self.invoke(name_or_arn, payload), self._loop)
        return future.result(timeout)

    def invoke_async(self, name_or_arn: str, payload: object, *, source: str | None = None) -> str:
        """Queue an Event invocation and return its request id at once (from any thread). The
        caller's trace (:data:`infra.local.trace.current_trace`) goes with it."""
        pool = self._pool_for(name_or_arn)
        event = encode_payload(payload)
        request_id = str(uuid.uuid4())
        trace_id = current_trace.get()
        if self._loop is None:
            raise RuntimeError("the Lambda runtime is not started")
        if _running_loop() is self._loop:
            self._queue_event(pool, request_id, event, source, trace_id)
        else:
            self._loop.call_soon_threadsafe(
                self._queue_event, pool, request_id, event, source, trace_id
            )
        return request_id

    def _queue_event(
        self,
        pool: FunctionPool,
        request_id: str,
        event: bytes,
        source: str | None,
        trace_id: str | None = None,
    ) -> None:
        task = asyncio.get_running_loop().create_task(
            self._run_event(pool, request_id, event, source, trace_id)
        )
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _run_event(
        self,
        pool: FunctionPool,
        request_id: str,
        event: bytes,
        source: str | None,
        trace_id: str | None = None,
    ) -> None:
        attempts = 1 + len(self.retry_delays)
        result: InvokeResult | None = None
        for attempt in range(1, attempts + 1):
            try:
                result = await pool.invoke(request_id, event, trace_id)
            except RuntimeError:  # the runtime is stopping
                return
            self._trace_invocation(pool.spec.name, result, trace_id, attempt)
            if result.ok:
                return
            if attempt < attempts:
                await asyncio.sleep(self.retry_delays[attempt - 1])
        assert result is not None
        log.warning(
            "%s: event %s%s failed %d times; recorded in its on-failure destination",
            pool.spec.name,
            request_id,
            f" from {source}" if source else "",
            attempts,
        )
        self._record_failure(pool.spec.name, request_id, event, result.error or {}, attempts)

    def _trace_invocation(
        self, name: str, result: InvokeResult, trace_id: str | None, attempt: int
    ) -> None:
        """One ``FunctionExecution`` entry in the stack's trace log (if it keeps one)."""
        log.debug(
            "%s: request %s %s in %.1f ms (attempt %d, trace %s)",
            name,
            result.request_id,
            "ok" if result.ok else "failed",
            result.duration_ms,
            attempt,
            trace_id,
        )
        if self.trace is None:
            return
        error = result.error or {}
        self.trace.emit(
            "FunctionExecution",
            trace_id,
            ok=result.ok,
            functionName=name,
            requestId=result.request_id,
            durationMs=round(result.duration_ms, 3),
            attempt=attempt,
            coldStart=result.cold or None,
            details=None
            if result.ok
            else f"{error.get('errorType', 'Error')}: {error.get('errorMessage', '')}",
        )

    def _record_failure(
        self, name: str, request_id: str, event: bytes, error: dict, attempts: int
    ) -> None:
        record = {
            "version": "1.0",
            "timestamp": awsformat.utc_stamp(),
            "requestContext": {
                "requestId": request_id,
                "functionArn": f"{self.arn(name)}:{awsformat.VERSION}",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": json.loads(event),
            "responseContext": {
                "statusCode": 200,
                "executedVersion": awsformat.VERSION,
                "functionError": "Unhandled",
            },
            "responsePayload": error,
        }
        # A failure record holds the whole event (what a user wrote): private.
        with append_private(failures_path(self.state_dir, name)) as sink:
            sink.write(json.dumps(record, separators=(",", ":")) + "\n")

    async def drain(self, timeout: float) -> None:
        """Wait until every queued event has finished (retries included); TimeoutError if not."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._events:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._events)} asynchronous invocation(s) still queued")
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait(set(self._events), timeout=remaining)
