"""Lambda event source mappings for Kinesis: poll each shard, batch, invoke, retry, checkpoint.

AWS Lambda reads a mapped stream with one poller per shard and invokes the function
synchronously with a batch of records, in order; the next batch of a shard waits until this one
has succeeded or been given up on. This module does the same in the stack's event loop, talking
to Kinesis through the edge API with boto3 (blocking calls run in threads):

- **Starting position.** A new mapping starts at ``LATEST``, ``TRIM_HORIZON`` or
  ``AT_TIMESTAMP``; a mapping that has run continues after the last record it finished with.
- **Batching.** A batch is sent when it holds ``BatchSize`` records or
  ``MaximumBatchingWindowInSeconds`` after its first record arrived, whichever comes first. An
  idle shard is polled every ``poll_interval`` seconds (AWS: about once a second).
- **Errors.** A failed invocation is retried with the same batch (backing off from
  ``retry_delay``), forever or ``MaximumRetryAttempts`` times; with
  ``BisectBatchOnFunctionError`` the batch is split in two and each half retried on its own
  (the split does not count as a retry). A batch given up on is recorded, as AWS's on-failure
  destination would get it, in ``<state_dir>/lambda/<function>/failures.jsonl``, and the stack
  logs a warning. Records are never skipped silently.
- **Permissions.** As on AWS, a mapping reads the stream with the function's execution role
  (https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html, "Execution role
  permissions": ``kinesis:GetRecords``, ``GetShardIterator``, ``DescribeStream``,
  ``ListShards``, ...): its calls are signed with a session of that role, from the runtime's
  credentials provider, renewed ``credential_margin`` seconds before it expires. AWS refuses
  to create a mapping whose role cannot read the stream (``InvalidParameterValueException``,
  "Cannot access stream"); locally the stack does not start, with
  :class:`StreamAccessError`. A refusal later (``GetRecords``) is logged and retried, and
  nothing is read, as on AWS.
- **Checkpoints.** After each batch, the last sequence number is written to
  ``<state_dir>/lambda/<function>/event-sources/<stream>.json``, so a restarted stack neither
  processes a finished batch again nor skips a record. A batch in flight when the stack stops
  is sent again after the restart (at-least-once, as on AWS).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from infra.local.iam.sessions import DEFAULT_RENEW_MARGIN, Renewal
from infra.local.lambda_runtime import awsformat
from infra.local.lambda_runtime.credentials import RenewingClient, RoleCredentials
from infra.local.lambda_runtime.pool import InvokeResult
from infra.local.lambda_runtime.runtime import LambdaRuntime, failures_path
from infra.local.state_files import append_private, write_atomic
from lambdas import arns
from lambdas.manifest import EventSourceMappingSpec

log = logging.getLogger(__name__)

DEFAULT_POLL_INTERVAL = 0.2
DEFAULT_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 5.0
GET_RECORDS_LIMIT = 10000  # Kinesis's most records per GetRecords
Record = dict[str, Any]  # one record as boto3's get_records returns it
# A boto3 client for a service at the edge API, signed with the given role session (None: the
# runtime has no credentials provider; the factory decides what to sign with).
ClientFactory = Callable[[str, RoleCredentials | None], Any]


def session_clients(endpoint: str, region: str) -> ClientFactory:
    """boto3 clients for the edge API signed with a role session, as a mapping's reads are.

    Each client gets its own boto3 session: sessions are not safe to share between threads,
    and the credentials are the client's own.
    """

    def client(service: str, credentials: RoleCredentials | None) -> Any:
        import boto3

        keys: dict[str, Any] = {}
        if credentials is not None:
            keys = {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
        session = boto3.session.Session(region_name=region, **keys)
        return session.client(service, endpoint_url=endpoint)

    return client


class StreamAccessError(Exception):
    """A mapping's function role may not read its stream: the mapping cannot be created."""


class _Stopping(Exception):
    """The mappings are stopping: leave the current batch unfinished (and unrecorded)."""


def checkpoint_path(state_dir: Path, spec: EventSourceMappingSpec) -> Path:
    return state_dir / "lambda" / spec.function_name / "event-sources" / f"{spec.stream_name}.json"


class Checkpoints:
    """Where one mapping is in each shard: ``{"sequenceNumber": ...}`` after its last finished
    record, or ``{"since": epoch}`` for a mapping that started at LATEST and has seen nothing
    yet (so a restart does not skip what arrived meanwhile). Written atomically."""

    def __init__(self, path: Path, spec: EventSourceMappingSpec) -> None:
        self.path = path
        self.spec = spec
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            data = {}
        self.shards: dict[str, dict[str, Any]] = dict(data.get("shards", {}))

    def get(self, shard_id: str) -> dict[str, Any] | None:
        return self.shards.get(shard_id)

    def set(self, shard_id: str, position: dict[str, Any]) -> None:
        self.shards[shard_id] = position
        data = {
            "FunctionName": self.spec.function_name,
            "EventSourceArn": self.spec.stream_arn,
            "shards": self.shards,
        }
        write_atomic(self.path, (json.dumps(data, indent=1) + "\n").encode("utf-8"), sync=False)


def kinesis_event(
    records: Sequence[Record], shard_id: str, spec: EventSourceMappingSpec, region: str, role: str
) -> dict[str, Any]:
    """The event Lambda hands a function for a batch of Kinesis records."""
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record["PartitionKey"],
                    "sequenceNumber": record["SequenceNumber"],
                    "data": base64.b64encode(record["Data"]).decode("ascii"),
                    "approximateArrivalTimestamp": record[
                        "ApproximateArrivalTimestamp"
                    ].timestamp(),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id}:{record['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role,
                "awsRegion": region,
                "eventSourceARN": spec.stream_arn,
            }
            for record in records
        ]
    }


class ShardPoller:
    """Reads one shard for one mapping and hands its records to the function, in order."""

    def __init__(self, owner: EventSourceMappings, spec: EventSourceMappingSpec, shard: str):
        self.owner = owner
        self.spec = spec
        self.shard_id = shard
        self.checkpoints = owner.checkpoints[spec.key]
        self.woken = asyncio.Event()  # set when records are put to the stream
        self._since: float | None = None  # read nothing that arrived before this epoch
        self._last_read: str | None = None  # sequence number of the last record read

    @property
    def name(self) -> str:
        return f"{self.spec.function_name} <- {self.spec.stream_name}/{self.shard_id}"

    async def run(self) -> None:
        try:
            await self._run()
        except _Stopping:
            pass
        except Exception:  # a bug; say so rather than let the shard go quiet unnoticed
            log.exception("event source mapping %s stopped", self.name)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        spec = self.spec
        iterator: str | None = await self._first_iterator()
        batch: list[Record] = []
        due = 0.0  # loop time at which the batch's window closes
        while iterator is not None:
            limit = min(spec.batch_size - len(batch), GET_RECORDS_LIMIT)
            self.woken.clear()  # a put from now on cuts the next idle wait short
            try:
                response = await self.owner.call(
                    spec, "get_records", ShardIterator=iterator, Limit=limit
                )
            except _Stopping:
                raise
            except Exception as exc:
                if _error_code(exc) == "ExpiredIteratorException":
                    iterator = await self._iterator_after(self._last_read)
                    continue
                log.warning("%s: GetRecords failed (%s); retrying", self.name, exc)
                await self.owner.sleep(self.owner.poll_interval)
                continue
            iterator = response.get("NextShardIterator")  # None once a closed shard is read
            fresh = self._wanted(response.get("Records", []))
            if fresh:
                if not batch:
                    # The window runs from the first record's arrival in the stream.
                    arrived = fresh[0]["ApproximateArrivalTimestamp"].timestamp()
                    due = loop.time() + arrived + spec.batching_window - time.time()
                batch.extend(fresh)
                self._last_read = fresh[-1]["SequenceNumber"]
            if batch and (len(batch) >= spec.batch_size or loop.time() >= due or iterator is None):
                await self._deliver(batch, retries=0)
                batch = []
                continue  # more records may be waiting: read again at once
            if len(response.get("Records", [])) >= limit:
                continue
            delay = self.owner.poll_interval
            if batch:
                delay = min(delay, due - loop.time())
            await self.owner.sleep(max(delay, 0.0), self.woken)
        log.info("%s: shard closed and fully processed", self.name)

    def _wanted(self, records: list[Record]) -> list[Record]:
        """Drop records from before ``_since`` (AT_TIMESTAMP, and LATEST after a restart)."""
        if self._since is None:
            return records
        kept = [r for r in records if r["ApproximateArrivalTimestamp"].timestamp() >= self._since]
        if kept:
            self._since = None  # the rest of the shard arrived later still
        return kept

    async def _first_iterator(self) -> str:
        spec = self.spec
        position = self.checkpoints.get(self.shard_id)
        if position is not None and "sequenceNumber" in position:
            self._last_read = position["sequenceNumber"]
            return await self._iterator_after(self._last_read)
        if position is not None and "since" in position:
            self._since = float(position["since"])
            return await self._iterator("TRIM_HORIZON")
        if spec.starting_position == "LATEST":
            # Remember when reading began: a restart before the first record arrives must
            # still pick up the records put in between, as AWS's long-lived mapping would.
            self.checkpoints.set(self.shard_id, {"since": time.time()})
            return await self._iterator("LATEST")
        if spec.starting_position == "AT_TIMESTAMP":
            # kinesalite never answers an AT_TIMESTAMP request when no record is that new
            # yet, so the same position is reached by reading from the start and filtering.
            self._since = spec.starting_timestamp
        return await self._iterator("TRIM_HORIZON")

    async def _iterator_after(self, sequence_number: str | None) -> str:
        if sequence_number is None:
            return await self._first_iterator()
        return await self._iterator("AFTER_SEQUENCE_NUMBER", sequence_number)

    async def _iterator(self, kind: str, sequence_number: str | None = None) -> str:
        request: dict[str, Any] = {
            "StreamName": self.spec.stream_name,
            "ShardId": self.shard_id,
            "ShardIteratorType": kind,
        }
        if sequence_number is not None:
            request["StartingSequenceNumber"] = sequence_number
        while True:
            try:
                response = await self.owner.call(self.spec, "get_shard_iterator", **request)
                return str(response["ShardIterator"])
            except _Stopping:
                raise
            except Exception as exc:
                log.warning("%s: GetShardIterator failed (%s); retrying", self.name, exc)
                await self.owner.sleep(self.owner.poll_interval)

    async def _deliver(self, records: list[Record], retries: int) -> None:
        """Invoke until the batch succeeds or is given up on; then checkpoint past it."""
        spec = self.spec
        invocations = 0
        while True:
            result = await self.owner.invoke(spec, records, self.shard_id)
            invocations += 1
            if result.ok:
                break
            if spec.bisect_on_error and len(records) > 1:
                half = len(records) // 2
                log.info(
                    "%s: function error on %d records; splitting the batch",
                    self.name,
                    len(records),
                )
                await self._deliver(records[:half], retries)
                await self._deliver(records[half:], retries)
                return
            if 0 <= spec.maximum_retry_attempts <= retries:
                self.owner.record_failure(spec, self.shard_id, records, result, invocations)
                break
            retries += 1
            delay = min(self.owner.retry_delay * 2 ** (retries - 1), MAX_RETRY_DELAY)
            await self.owner.sleep(delay)
        self.checkpoints.set(self.shard_id, {"sequenceNumber": records[-1]["SequenceNumber"]})


def _error_code(exc: Exception) -> str | None:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None


class EventSourceMappings:
    """Every enabled mapping of the manifest, one :class:`ShardPoller` per mapping and shard.

    ``client(service, credentials)`` makes a boto3 client pointed at the edge API, signed with
    a session of the mapped function's execution role (``runtime.role_credentials``);
    ``role_arn(function)`` names that role in the events (``invokeIdentityArn``).
    """

    def __init__(
        self,
        specs: Sequence[EventSourceMappingSpec],
        runtime: LambdaRuntime,
        client: ClientFactory,
        state_dir: Path,
        *,
        region: str = arns.REGION,
        account_id: str = arns.ACCOUNT_ID,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        retry_delay: float = DEFAULT_RETRY_DELAY,
        role_arn: Callable[[str], str] | None = None,
        credential_margin: float = DEFAULT_RENEW_MARGIN,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.specs = [spec for spec in specs if spec.enabled]
        self.runtime = runtime
        self.state_dir = Path(state_dir)
        self.region = region
        self.account_id = account_id
        self.poll_interval = poll_interval
        self.retry_delay = retry_delay
        self.checkpoints = {
            spec.key: Checkpoints(checkpoint_path(self.state_dir, spec), spec)
            for spec in self.specs
        }
        self.pollers: list[ShardPoller] = []
        self._client = client
        self._role_arn = role_arn
        # One Kinesis client per mapped function, signed as its execution role.
        self.clients = {
            spec.function_name: self._kinesis_client(spec.function_name, credential_margin, clock)
            for spec in self.specs
        }
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def _kinesis_client(
        self, function: str, margin: float, clock: Callable[[], float]
    ) -> RenewingClient:
        return RenewingClient(
            lambda: self.runtime.role_credentials(function),
            lambda credentials: self._client("kinesis", credentials),
            renewal=Renewal(margin, clock),
        )

    async def start(self) -> None:
        """List each mapped stream's shards and start polling them."""
        if not self.specs:
            return
        for spec in self.specs:
            shards: list[str] = []
            token: str | None = None
            while True:
                request = {"NextToken": token} if token else {"StreamName": spec.stream_name}
                try:
                    page = await self.call(spec, "list_shards", **request)
                except Exception as exc:
                    if _error_code(exc) != "AccessDeniedException":
                        raise
                    raise StreamAccessError(
                        f"event source mapping {spec.function_name} <- {spec.stream_name}: "
                        f"cannot access stream {spec.stream_arn}: the function's execution "
                        "role must allow kinesis:GetRecords, GetShardIterator, DescribeStream "
                        f"and ListShards on it ({exc})"
                    ) from exc
                shards.extend(shard["ShardId"] for shard in page.get("Shards", []))
                token = page.get("NextToken")
                if not token:
                    break
            for shard in shards:
                self.pollers.append(ShardPoller(self, spec, shard))
        for poller in self.pollers:
            self._tasks.append(asyncio.create_task(poller.run(), name=poller.name))
        log.info("event source mappings: polling %d shard(s)", len(self.pollers))

    async def stop(self, grace: float = 5.0) -> None:
        """Let batches in flight finish (up to ``grace`` seconds), then cancel the rest."""
        self._stopping.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    @property
    def running(self) -> bool:
        return not self._stopping.is_set()

    # -- what pollers use -----------------------------------------------------------------
    async def call(self, spec: EventSourceMappingSpec, method: str, **request: Any) -> Any:
        """Kinesis ``method`` as the mapped function's execution role (in a thread)."""
        if self._stopping.is_set():
            raise _Stopping
        renewing = self.clients[spec.function_name]
        client = renewing.client
        if renewing.due():
            # Issued here, on the stack's loop, which owns the key store; built off it.
            client = await asyncio.to_thread(renewing.renew, renewing.issue())
        return await asyncio.to_thread(getattr(client, method), **request)

    async def sleep(self, delay: float, woken: asyncio.Event | None = None) -> None:
        """Wait ``delay`` seconds or until ``woken`` is set; raise :class:`_Stopping` as soon
        as the stop begins."""
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if woken is not None:
            waits.append(asyncio.ensure_future(woken.wait()))
        try:
            await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                waiting.cancel()
        if self._stopping.is_set():
            raise _Stopping

    def records_put(self, stream_name: str) -> None:
        """Records were just put to ``stream_name``: its pollers read now, not at their next
        poll (a local shortcut for latency; AWS's pollers only poll)."""
        for poller in self.pollers:
            if poller.spec.stream_name == stream_name:
                poller.woken.set()

    def role_arn(self, spec: EventSourceMappingSpec) -> str:
        """The function's execution role, as the event names it."""
        if self._role_arn is not None:
            return self._role_arn(spec.function_name)
        return f"arn:aws:iam::{self.account_id}:role/{spec.function_name}-role"

    async def invoke(
        self, spec: EventSourceMappingSpec, records: Sequence[Record], shard_id: str
    ) -> InvokeResult:
        if self._stopping.is_set():
            raise _Stopping
        event = kinesis_event(records, shard_id, spec, self.region, self.role_arn(spec))
        return await self.runtime.invoke(spec.function_name, event)

    def record_failure(
        self,
        spec: EventSourceMappingSpec,
        shard_id: str,
        records: Sequence[Record],
        result: InvokeResult,
        invocations: int,
    ) -> None:
        """Append AWS's on-failure record for a stream batch; log the function's error."""
        first, last = records[0], records[-1]
        record = {
            "requestContext": {
                "requestId": result.request_id,
                "functionArn": arns.function_arn(spec.function_name, self.region, self.account_id),
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": invocations,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": awsformat.VERSION,
                "functionError": "Unhandled",
            },
            "version": "1.0",
            "timestamp": awsformat.utc_stamp(),
            "KinesisBatchInfo": {
                "shardId": shard_id,
                "startSequenceNumber": first["SequenceNumber"],
                "endSequenceNumber": last["SequenceNumber"],
                "approximateArrivalOfFirstRecord": awsformat.utc_stamp(
                    first["ApproximateArrivalTimestamp"].timestamp()
                ),
                "approximateArrivalOfLastRecord": awsformat.utc_stamp(
                    last["ApproximateArrivalTimestamp"].timestamp()
                ),
                "batchSize": len(records),
                "streamArn": spec.stream_arn,
            },
        }
        # The record names the batch's sequence numbers (AWS's on-failure record): private.
        with append_private(failures_path(self.state_dir, spec.function_name)) as sink:
            sink.write(json.dumps(record, separators=(",", ":")) + "\n")
        error = result.error or {}
        log.warning(
            "%s: %d record(s) of %s/%s (sequence %s to %s) failed %d time(s) (%s: %s); "
            "recorded in its on-failure destination",
            spec.function_name,
            len(records),
            spec.stream_name,
            shard_id,
            first["SequenceNumber"],
            last["SequenceNumber"],
            invocations,
            error.get("errorType", "Error"),
            error.get("errorMessage", ""),
        )
