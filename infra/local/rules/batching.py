"""Rule actions' PutItems grouped into BatchWriteItem on the way to the local DynamoDB.

Each message keeps its own outcome: :meth:`PutItemBatcher.put` resolves when that message's
item is written, and raises that item's own error, so a failure still fires that message's
errorAction and no other. Grouping only changes how the writes travel: under load one request
carries up to 25 items (DynamoDB's BatchWriteItem limit) instead of one, which is what the
store path spent its time on (an HTTP request per message); at low rates nothing waits, a lone
item goes out at once.

DynamoDB's documented batch rules decide the fallbacks
(https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html):
``UnprocessedItems`` are sent again (with a growing pause); a request that fails as a whole
with ``ValidationException`` (an item too large, two items with the same key in one batch)
is split into single PutItems, so each item gets its own answer; any other error of the
whole request (the table is missing, the service is down) is every item's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

BATCH_LIMIT = 25  # items per BatchWriteItem (DynamoDB's limit)
REQUESTS_IN_FLIGHT = 4  # batch requests per table at once: keeps dynalite busy, not swamped
UNPROCESSED_RETRIES = 8
UNPROCESSED_PAUSE = 0.02  # seconds, doubling per retry

# ``call(operation, body)``: one DynamoDB JSON request, raising the service's error.
JsonCall = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]
# Tells a whole-request validation failure from other errors (the caller's error type).
IsValidationError = Callable[[BaseException], bool]


@dataclass
class _Pending:
    item: dict[str, Any]
    done: asyncio.Future[None]


@dataclass
class _TableQueue:
    waiting: list[_Pending] = field(default_factory=list)
    in_flight: int = 0


class PutItemBatcher:
    """Plain PutItems (a table and an item, nothing conditional) per table, written in groups.

    Items are never held back to fill a batch: whatever is queued when a request slot is free
    goes out together, so grouping happens only when writes arrive faster than they complete.
    """

    def __init__(self, call: JsonCall, is_validation_error: IsValidationError) -> None:
        self._call = call
        self._is_validation_error = is_validation_error
        self._tables: dict[str, _TableQueue] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def put(self, table: str, item: dict[str, Any]) -> None:
        """Write ``item`` to ``table``; returns once it is written, raises its own error."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue = self._tables.setdefault(table, _TableQueue())
        queue.waiting.append(_Pending(item, done))
        self._start(table, queue)
        await done

    def _start(self, table: str, queue: _TableQueue) -> None:
        while queue.waiting and queue.in_flight < REQUESTS_IN_FLIGHT:
            batch, queue.waiting = queue.waiting[:BATCH_LIMIT], queue.waiting[BATCH_LIMIT:]
            queue.in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(table, queue, batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, table: str, queue: _TableQueue, batch: list[_Pending]) -> None:
        try:
            if len(batch) == 1:
                await self._single(table, batch[0])
            else:
                await self._batch(table, batch)
        finally:
            queue.in_flight -= 1
            self._start(table, queue)

    async def _single(self, table: str, pending: _Pending) -> None:
        try:
            await self._call("PutItem", {"TableName": table, "Item": pending.item})
        except Exception as exc:
            _settle(pending, exc)
        else:
            _settle(pending, None)

    async def _batch(self, table: str, batch: list[_Pending]) -> None:
        remaining = batch
        pause = UNPROCESSED_PAUSE
        for attempt in range(UNPROCESSED_RETRIES + 1):
            body = {"RequestItems": {table: [{"PutRequest": {"Item": p.item}} for p in remaining]}}
            try:
                answer = await self._call("BatchWriteItem", body)
            except Exception as exc:
                if self._is_validation_error(exc):
                    # One bad item (or a repeated key) fails the whole request: give each
                    # item its own answer.
                    await asyncio.gather(*(self._single(table, p) for p in remaining))
                    return
                for pending in remaining:
                    _settle(pending, exc)
                return
            unprocessed = answer.get("UnprocessedItems", {}).get(table, [])
            if not unprocessed:
                for pending in remaining:
                    _settle(pending, None)
                return
            left = {_key(r["PutRequest"]["Item"]) for r in unprocessed}
            for pending in remaining:
                if _key(pending.item) not in left:
                    _settle(pending, None)
            remaining = [p for p in remaining if _key(p.item) in left]
            if attempt < UNPROCESSED_RETRIES:
                await asyncio.sleep(pause)  # DynamoDB's advice: back off before resending
                pause *= 2
        log.warning("%d items to %s stayed unprocessed after retries", len(remaining), table)
        for pending in remaining:
            _settle(pending, RuntimeError("BatchWriteItem left the item unprocessed"))

    async def close(self) -> None:
        """Wait for the requests in flight (the stack's drain has already waited for the
        actions that need them)."""
        for task in list(self._tasks):
            with contextlib.suppress(Exception):
                await task


def _key(item: dict[str, Any]) -> str:
    """An item's identity within one batch: the whole item, as DynamoDB's JSON serialises it
    (the batch never holds the same object twice; equal items are one write either way)."""
    return json.dumps(item, sort_keys=True)


def _settle(pending: _Pending, error: BaseException | None) -> None:
    if pending.done.done():
        return
    if error is None:
        pending.done.set_result(None)
    else:
        pending.done.set_exception(error)
