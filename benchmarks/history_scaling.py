"""history-scaling: does the newest-50 history page get slower as a room grows?

On a whole local stack (``iotchat up`` in a temporary state directory, ephemeral ports),
rooms of 10^3, 10^4 and 10^5 messages (10^6 too with ``IOTCHAT_BENCH_HISTORY_MILLION=1``;
seeding it takes several minutes) and a 20-message room (the seed study's size, the
baseline) are filled with items in exactly the format the store rule ``chat_room_store``
writes (conv, mid, tsid, ts, id, room, text, sender, expiresAt), by BatchWriteItem through
the edge API. Before that, one real message published over MQTT is stored by the rule, and
its item is compared with a seeded one (same attribute names and types), so the seeded rooms
are what the backend would have written.

All rooms live in the one messages table and are measured after all of them are seeded, in
interleaved rounds, so the only thing that differs between sizes is the room's size:

- **store**: ``ChatStore.history_page(room#<room>, 50)`` against the stack's DynamoDB (the
  strongly consistent ``byTime`` Query, newest first, ``Limit`` 51, the commands Lambda runs).
- **e2e**: a paho-mqtt client publishes ``{"type":"history","room":R}`` to ``chat/out`` and
  waits for the ``history`` reply on its inbox ``chat/in/<clientId>``: chat_commands rule,
  the commands Lambda (warm), the Query, the iot-data publish back.

Once per size, the page is checked: the 50 newest messages, newest first, both paths (20 in
the 20-message room, with no cursor). The goal (p99 of the largest room within 2x of the
smallest) is reported, never asserted.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from lambdas.chat import keys
from lambdas.chat.protocol import RETENTION_DAYS
from lambdas.chat.store import ChatStore, to_item
from tests.support.messages_table import count_items

from . import _harness as h
from .store_latency import (
    dynamodb_client,
    messages_table,
    mqtt_client,
    no_delay,
    stack_file,
)

NAME = "history-scaling"
PAGE = 50
BASELINE_SIZE = 20  # the seed study's room
FULL_SIZES = (BASELINE_SIZE, 1_000, 10_000, 100_000)
MILLION_ENV = "IOTCHAT_BENCH_HISTORY_MILLION"
QUICK_SIZES = (BASELINE_SIZE, 100, 1_000)
SENDERS = 10  # seeded messages come from this many client ids, in turn
TEXT_CHARS = 100
SEED_WORKERS = 4
BATCH = 25  # BatchWriteItem's maximum
RATIO_TARGET = 2.0
REPLY_TIMEOUT = 10.0


def _commands_concurrency() -> int:
    """The commands Lambda's reservedConcurrency in lambdas/manifest.json (its worker count)."""
    from lambdas.manifest import Manifest

    spec = Manifest.load().get("iotchat-commands")
    return (spec.reserved_concurrency if spec else None) or 1


COMMANDS_CONCURRENCY = _commands_concurrency()


# --------------------------------------------------------------------------- seeding


def seeded_message(room: str, run: str, i: int, first_ts: int) -> dict[str, Any]:
    """Message ``i`` of a seeded room as the rule would store it (``ts`` 1 ms apart)."""
    sender = f"seed-{run}-{i % SENDERS}"
    message_id = str(uuid.UUID(int=(int(run, 16) << 64) | i))
    ts = first_ts + i
    head = f"seeded message {i} "
    text = head + "x" * max(TEXT_CHARS - len(head), 1)
    item_mid = keys.copy_mid(keys.mid(sender, message_id), text)
    return {
        "conv": keys.room_conv(room),
        "mid": item_mid,
        "tsid": keys.tsid(ts, item_mid),
        "ts": ts,
        "id": message_id,
        "room": room,
        "body": text,
        "sender": sender,
        "expiresAt": ts // 1000 + RETENTION_DAYS * 86400,
    }


def seed_room(
    stack: dict[str, Any], room: str, run: str, size: int, first_ts: int
) -> tuple[float, list[str]]:
    """Write ``size`` messages; (seconds taken, the newest ``PAGE`` ids newest first)."""
    table = messages_table(stack)
    local = threading.local()
    creating = threading.Lock()  # boto3 clients must not be created concurrently

    def write(start: int) -> None:
        client = getattr(local, "client", None)
        if client is None:
            with creating:
                client = local.client = dynamodb_client(stack)
        requests = [
            {"PutRequest": {"Item": to_item(seeded_message(room, run, i, first_ts))}}
            for i in range(start, min(start + BATCH, size))
        ]
        pending = {table: requests}
        for attempt in range(20):
            unprocessed = client.batch_write_item(RequestItems=pending).get("UnprocessedItems")
            if not unprocessed:
                return
            pending = unprocessed
            time.sleep(0.01 * (attempt + 1))  # back-off before retrying what was refused
        raise h.BenchmarkError(f"seeding {room}: items still unprocessed after retries")

    began = time.monotonic()
    with ThreadPoolExecutor(SEED_WORKERS) as pool:
        list(pool.map(write, range(0, size, BATCH)))
    seconds = time.monotonic() - began
    newest = range(size - 1, max(size - PAGE, 0) - 1, -1)
    return seconds, [seeded_message(room, run, i, first_ts)["id"] for i in newest]


# --------------------------------------------------------------------------- MQTT requester


class HistoryClient:
    """One MQTT client asking for history and timing the reply on its inbox."""

    def __init__(self, gw: h.BrokerProcess, client_id: str) -> None:
        self.client_id = client_id
        self.client = mqtt_client(client_id, gw.username, gw.password)
        self.replies: list[tuple[int, dict[str, Any]]] = []
        self.arrived = threading.Condition()
        subscribed = threading.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: subscribed.set()
        self.client.on_connect = lambda c, *_args: c.subscribe(f"chat/in/{client_id}", qos=1)
        self.client.connect(h.HOST, gw.port, keepalive=60)
        no_delay(self.client)
        self.client.loop_start()
        if not subscribed.wait(15):
            self.close()
            raise h.BenchmarkError("history client: no SUBACK")

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        now = time.monotonic_ns()
        with self.arrived:
            self.replies.append((now, json.loads(msg.payload)))
            self.arrived.notify_all()

    def publish(self, body: dict[str, Any]) -> None:
        self.client.publish("chat/out", json.dumps(body), qos=1)

    def history(self, room: str) -> tuple[int, dict[str, Any]]:
        """(nanoseconds from publish to reply, the reply)."""
        with self.arrived:
            self.replies.clear()
        sent = time.monotonic_ns()
        self.publish({"v": 1, "type": "history", "room": room})
        deadline = time.monotonic() + REPLY_TIMEOUT
        with self.arrived:
            while True:
                for at, body in self.replies:
                    if body.get("room") == room and body.get("type") in ("history", "error"):
                        if body["type"] == "error":
                            raise h.BenchmarkError(f"history request refused: {body}")
                        return at - sent, body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise h.BenchmarkError(f"no history reply for {room} in {REPLY_TIMEOUT}s")
                self.arrived.wait(remaining)

    def warm_workers(self, room: str, concurrency: int) -> None:
        """Send ``concurrency`` requests at once, so every Lambda worker the function may run
        is started before timing (a reply can arrive before its handler returns, so the next
        request may find the first worker still busy and start another)."""
        with self.arrived:
            self.replies.clear()
        for _ in range(concurrency):
            self.publish({"v": 1, "type": "history", "room": room})
        deadline = time.monotonic() + 30
        with self.arrived:
            while sum(1 for _, body in self.replies if body.get("room") == room) < concurrency:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise h.BenchmarkError("no history replies while warming the Lambda")
                self.arrived.wait(remaining)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def check_seeded_format(
    gw: h.BrokerProcess, stack: dict[str, Any], requester: HistoryClient, run: str
) -> None:
    """A real message stored by the rule has the attributes (and types) of a seeded item."""
    dynamodb = dynamodb_client(stack)
    room = f"format-{run}"
    message_id = str(uuid.uuid4())
    requester.publish({"v": 1, "type": "message", "id": message_id, "room": room, "body": "hi"})
    key = {
        "conv": {"S": keys.room_conv(room)},
        "mid": {"S": keys.copy_mid(keys.mid(requester.client_id, message_id), "hi")},
    }

    def stored() -> dict[str, Any] | None:
        table = messages_table(stack)
        return dynamodb.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")

    real = h.wait_until(stored, 15, "the store rule to write a message")
    seeded = to_item(seeded_message(room, run, 0, int(time.time() * 1000)))

    def shape(item: dict[str, Any]) -> dict[str, str]:
        return {name: next(iter(value)) for name, value in item.items()}

    if shape(real) != shape(seeded):
        raise h.BenchmarkError(f"seeded items differ from stored ones: {real} vs {seeded}")
    if real["tsid"]["S"] != f"{real['ts']['N']}#{real['mid']['S']}":
        raise h.BenchmarkError(f"stored tsid is not <ts>#<mid>: {real}")


# --------------------------------------------------------------------------- driver


def _page_ids(messages: list[dict[str, Any]]) -> list[str]:
    return [m["id"] for m in messages]


def _verify(size: int, newest: list[str], ids: list[str], cursor: object, path: str) -> None:
    expected = newest[: min(size, PAGE)]
    if ids != expected:
        raise h.BenchmarkError(f"{path} page of the {size}-message room is not the newest first")
    if (cursor is None) != (size <= PAGE):
        raise h.BenchmarkError(f"{path} page of the {size}-message room: cursor {cursor!r}")


def measure(
    *,
    sizes: Sequence[int] = FULL_SIZES,
    rounds: int = 10,
    per_round: int = 20,
    warmup: int = 5,
) -> list[dict[str, Any]]:
    """``rounds`` x ``per_round`` samples per size and path, sizes interleaved per round."""
    sizes = sorted(set(sizes))
    load = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    run = uuid.uuid4().hex[:16]
    rooms = {size: f"h{size}-{run[:8]}" for size in sizes}
    seeding: dict[int, float] = {}
    newest: dict[int, list[str]] = {}
    verified: dict[int, int] = {}  # messages on the checked page
    stored: dict[int, int] = {}
    samples: dict[str, dict[int, list[int]]] = {"store": {}, "e2e": {}}
    with h.temp_dir("history-scaling") as workdir, h.gateway(workdir) as gw:
        stack = stack_file(workdir)
        requester = HistoryClient(gw, f"bench-history-{run[:8]}")
        try:
            check_seeded_format(gw, stack, requester, run)
            now_ms = int(time.time() * 1000)
            for size in sizes:
                # Every room's newest message is a minute old; its oldest ``size`` ms before.
                seconds, newest[size] = seed_room(
                    stack, rooms[size], run, size, now_ms - 60_000 - size
                )
                seeding[size] = seconds
                stored[size] = count_items(
                    dynamodb_client(stack), messages_table(stack), keys.room_conv(rooms[size])
                )
            store = ChatStore(dynamodb_client(stack), messages_table(stack), "unused")
            requester.warm_workers(rooms[sizes[0]], COMMANDS_CONCURRENCY)
            for size in sizes:
                conv = keys.room_conv(rooms[size])
                page = store.history_page(conv, PAGE)
                _verify(size, newest[size], _page_ids(page.messages), page.cursor, "store")
                _, reply = requester.history(rooms[size])
                _verify(size, newest[size], _page_ids(reply["messages"]), reply["cursor"], "e2e")
                verified[size] = len(page.messages)
                for _ in range(warmup):
                    store.history_page(conv, PAGE)
                    requester.history(rooms[size])
                samples["store"][size] = []
                samples["e2e"][size] = []
            for _ in range(rounds):
                for size in sizes:
                    conv = keys.room_conv(rooms[size])
                    for _ in range(per_round):
                        began = time.monotonic_ns()
                        store.history_page(conv, PAGE)
                        samples["store"][size].append(time.monotonic_ns() - began)
                    for _ in range(per_round):
                        samples["e2e"][size].append(requester.history(rooms[size])[0])
        finally:
            requester.close()
        gw.check_alive()
    return summarize(samples, seeding, verified, stored, load=load)


def _ms(values: list[int], pct: float) -> float:
    return h.percentile(values, pct) / 1e6


def summarize(
    samples: dict[str, dict[int, list[int]]],
    seeding: dict[int, float],
    verified: dict[int, int],
    stored: dict[int, int],
    *,
    load: float,
) -> list[dict[str, Any]]:
    sizes = sorted(seeding)
    smallest, largest = sizes[0], sizes[-1]
    paths = {
        "store": "ChatStore.history_page(conv, 50) through the edge API (byTime Query)",
        "e2e": "MQTT history request on chat/out -> commands Lambda -> reply on chat/in/<id>",
    }
    common = {"page_size": PAGE, "text_chars": TEXT_CHARS, "loadavg_1m": load}
    lines: list[dict[str, Any]] = []
    for size in sizes:
        lines.append(
            {
                "name": NAME,
                "metric": "seed_rate",
                "unit": "items/s",
                "room_messages": size,
                "value": round(size / max(seeding[size], 1e-9), 1),
                "baseline": None,
                "ratio": None,
                "seconds": round(seeding[size], 3),
                "items_stored": stored[size],
                "method": f"BatchWriteItem of {BATCH} through the edge API, {SEED_WORKERS} threads",
                **common,
            }
        )
    for path, description in paths.items():
        for size in sizes:
            values = samples[path][size]
            for metric, pct in (("p50", 50.0), ("p99", 99.0)):
                value = _ms(values, pct)
                baseline = _ms(samples[path][smallest], pct)
                lines.append(
                    {
                        "name": NAME,
                        "metric": metric,
                        "unit": "ms",
                        "path": path,
                        "path_description": description,
                        "room_messages": size,
                        "value": round(value, 3),
                        "baseline": round(baseline, 3),
                        "baseline_name": f"the {smallest}-message room, same path and run",
                        "ratio": h.ratio(value, baseline),
                        "max_ms": round(_ms(values, 100), 3),
                        "samples_count": len(values),
                        # Checked once: the newest messages, newest first, on both paths.
                        "page_verified": True,
                        "page_messages": verified[size],
                        **common,
                    }
                )
        largest_p99 = _ms(samples[path][largest], 99)
        scaled = [s for s in sizes if s != smallest]
        lines.append(
            {
                "name": NAME,
                "metric": "p99_largest_over_smallest",
                "unit": "ratio",
                "path": path,
                "path_description": description,
                "room_messages": largest,
                "value": round(largest_p99, 3),
                "baseline": round(_ms(samples[path][smallest], 99), 3),
                "baseline_name": f"p99 of the {smallest}-message room",
                "ratio": h.ratio(largest_p99, _ms(samples[path][smallest], 99)),
                # The same against the smallest scaled room: 50-message pages on both sides.
                "ratio_to_next_smallest": (
                    h.ratio(largest_p99, _ms(samples[path][scaled[0]], 99)) if scaled else None
                ),
                "next_smallest_room_messages": scaled[0] if scaled else None,
                "target": f"ratio <= {RATIO_TARGET:g}",
                "target_met": largest_p99 <= RATIO_TARGET * _ms(samples[path][smallest], 99),
                **common,
            }
        )
    return lines


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(sizes=QUICK_SIZES, rounds=3, per_round=10)
    sizes: Sequence[int] = FULL_SIZES
    if os.environ.get(MILLION_ENV) == "1":
        sizes = (*FULL_SIZES, 1_000_000)
    return measure(sizes=sizes)
