"""PutItemBatcher: each message's write keeps its own outcome while the requests carry
several items, against a recording stand-in for DynamoDB's JSON API (the real dynalite path is
what the store scenarios and tests/e2e/chat exercise)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from infra.local.rules.batching import BATCH_LIMIT, REQUESTS_IN_FLIGHT, PutItemBatcher


class Refused(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class FakeDynamo:
    """Answers PutItem and BatchWriteItem like DynamoDB: a ValidationException for an item
    with ``bad`` (the whole batch fails), ``unprocessed`` items left over once, and a
    ResourceNotFoundException for an unknown table."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, int]] = []
        self.stored: list[str] = []
        self.left_over_once: set[str] = set()
        self.gate = asyncio.Event()
        self.gate.set()

    async def call(self, operation: str, body: dict[str, Any]) -> dict[str, Any]:
        await self.gate.wait()
        await asyncio.sleep(0)
        if operation == "PutItem":
            items = {body["TableName"]: [{"PutRequest": {"Item": body["Item"]}}]}
        else:
            items = body["RequestItems"]
        [(table, requests)] = items.items()
        self.requests.append((operation, len(requests)))
        if table != "messages":
            raise Refused("ResourceNotFoundException")
        ids = [r["PutRequest"]["Item"]["id"]["S"] for r in requests]
        if any(i.startswith("bad") for i in ids):
            raise Refused("ValidationException")
        if operation == "PutItem":
            self.stored += ids
            return {}
        left = self.left_over_once & set(ids)
        self.left_over_once -= left
        self.stored += [i for i in ids if i not in left]
        unprocessed = [r for r, i in zip(requests, ids, strict=True) if i in left]
        if unprocessed:
            return {"UnprocessedItems": {table: unprocessed}}
        return {}


def item(message_id: str) -> dict[str, Any]:
    return {"id": {"S": message_id}}


def batcher(db: FakeDynamo) -> PutItemBatcher:
    return PutItemBatcher(db.call, lambda exc: getattr(exc, "code", "") == "ValidationException")


def test_a_lone_write_goes_out_at_once_as_a_put_item() -> None:
    async def scenario() -> FakeDynamo:
        db = FakeDynamo()
        await batcher(db).put("messages", item("a"))
        return db

    db = asyncio.run(scenario())
    assert db.requests == [("PutItem", 1)] and db.stored == ["a"]


def test_writes_that_arrive_together_travel_in_batches_of_at_most_25() -> None:
    async def scenario() -> FakeDynamo:
        db = FakeDynamo()
        db.gate.clear()  # the service is busy: writes queue up behind the first requests
        puts = batcher(db)
        tasks = [asyncio.create_task(puts.put("messages", item(f"m{n}"))) for n in range(200)]
        await asyncio.sleep(0)
        db.gate.set()
        await asyncio.gather(*tasks)
        return db

    db = asyncio.run(scenario())
    assert sorted(db.stored) == sorted(f"m{n}" for n in range(200))
    assert all(size <= BATCH_LIMIT for _, size in db.requests)
    # The first requests took one item each (nothing was queued yet); the rest were grouped.
    assert len(db.requests) < 200 // 2
    assert ("BatchWriteItem", BATCH_LIMIT) in db.requests


def test_one_bad_item_fails_alone_and_the_rest_of_its_batch_is_written() -> None:
    async def scenario() -> tuple[FakeDynamo, list[BaseException | None]]:
        db = FakeDynamo()
        db.gate.clear()
        puts = batcher(db)
        ids = [f"m{n}" for n in range(REQUESTS_IN_FLIGHT)] + ["x1", "bad", "x2"]
        tasks = [asyncio.create_task(puts.put("messages", item(i))) for i in ids]
        await asyncio.sleep(0)
        db.gate.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        return db, [r if isinstance(r, BaseException) else None for r in results]

    db, outcomes = asyncio.run(scenario())
    errors = [type(o).__name__ if o else None for o in outcomes]
    assert errors[-3:] == [None, "Refused", None]
    assert "x1" in db.stored and "x2" in db.stored and "bad" not in db.stored


def test_unprocessed_items_are_sent_again_until_written() -> None:
    async def scenario() -> FakeDynamo:
        db = FakeDynamo()
        db.left_over_once = {"m3", "m7"}
        db.gate.clear()
        puts = batcher(db)
        tasks = [asyncio.create_task(puts.put("messages", item(f"m{n}"))) for n in range(40)]
        await asyncio.sleep(0)
        db.gate.set()
        await asyncio.gather(*tasks)
        return db

    db = asyncio.run(scenario())
    assert sorted(db.stored) == sorted(f"m{n}" for n in range(40))


def test_an_error_of_the_whole_request_is_every_items_error() -> None:
    async def scenario() -> list[BaseException]:
        db = FakeDynamo()
        db.gate.clear()
        puts = batcher(db)
        tasks = [asyncio.create_task(puts.put("missing", item(f"m{n}"))) for n in range(30)]
        await asyncio.sleep(0)
        db.gate.set()
        return [r for r in await asyncio.gather(*tasks, return_exceptions=True) if r]

    errors = asyncio.run(scenario())
    assert len(errors) == 30 and {getattr(e, "code", "") for e in errors} == {
        "ResourceNotFoundException"
    }


@pytest.mark.parametrize("count", [1, BATCH_LIMIT + 1])
def test_close_waits_for_the_requests_in_flight(count: int) -> None:
    async def scenario() -> FakeDynamo:
        db = FakeDynamo()
        puts = batcher(db)
        tasks = [asyncio.create_task(puts.put("messages", item(f"m{n}"))) for n in range(count)]
        await asyncio.sleep(0)
        await puts.close()
        await asyncio.gather(*tasks)
        return db

    assert len(asyncio.run(scenario()).stored) == count
