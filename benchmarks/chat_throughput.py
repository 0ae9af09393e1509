"""chat-throughput: the chat's whole pipeline at increasing rates, and where it stops keeping up.

On a whole local stack (``iotchat up`` on ephemeral ports, the admin's publish rate limit
lifted), C clients do the load so that the Python stack is what is measured:
``mosquitto_pub -l`` processes fed valid room messages (docs/protocol.md) on ``chat/out`` at
QoS 1 on a fixed schedule, and 10 ``mosquitto_sub`` subscribers of the room. The rules
republish each message to ``chat/pub/<room>`` (``chat_room_message``) and store it
(``chat_room_store``, a dynamoDBv2 PutItem).

A rate **passes** when, 1 s after the last scheduled send, every subscriber has received every
message and the room's stored item count is the number sent. The ramp doubles the rate until
one fails, then (full run) bisects between the last pass and the first failure; the
**capacity** is the highest rate that passed. Each step uses a new room and waits for the
previous step's backlog to drain first.

Two baselines, measured in the same run on the same machine:

- **dynalite PutItem**: dynalite's raw single-item write rate, 16 concurrent connections on
  its socket, items of the same shape the store rule writes (no gateway, no rules);
- **bare fan-out**: the same ramp, the same messages published straight to a room-like topic
  that no rule reads (``bench/pub/<room>``: ``chat/pub/+`` itself feeds the store rule), with
  the subscribers on it: what the gateway alone delivers.

At half the capacity, p50/p99 of publish-to-delivered (a subscriber's receive time) and
publish-to-stored (first strongly consistent read, the store-latency reader) are reported.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.messages_table import count_items, room_conv

from . import _harness as h
from .store_latency import _child as store_reader
from .store_latency import dynamodb_client, messages_table, room_message, stack_file

NAME = "chat-throughput"
SUBSCRIBERS = 10
PUBLISHERS = 2  # mosquitto_pub processes, messages dealt round robin
QOS = 1
TEXT_BYTES = 100
GRACE_SECONDS = 1.0  # "stored and delivered within 1 s of the last send"
DYNALITE_CONNECTIONS = 16
PACE_NS = 5_000_000  # the feeder writes what is due every 5 ms


@dataclass
class Step:
    """One rate of the ramp and what came of it."""

    rate: int
    sent: int
    delivered_min: int  # the subscriber that received the fewest distinct messages
    stored: int  # at the deadline (1 s after the last send)
    stored_final: int  # after the backlog drained
    delivered_final: int
    send_seconds: float
    store: bool

    @property
    def passed(self) -> bool:
        done = self.delivered_min == self.sent
        return done and (self.stored == self.sent or not self.store)

    def line(self, kind: str) -> dict[str, Any]:
        seconds = max(self.send_seconds, 1e-9)
        return {
            "name": NAME,
            "metric": f"{kind}-step",
            "offered_per_s": self.rate,
            "sent": self.sent,
            "delivered_to_slowest_subscriber": self.delivered_min,
            "stored_within_1s": self.stored if self.store else None,
            "stored_after_drain": self.stored_final if self.store else None,
            "delivered_rate_per_s": round(self.delivered_final / seconds, 1),
            "stored_rate_per_s": round(self.stored_final / seconds, 1) if self.store else None,
            "passed": self.passed,
        }


def room_line(message_id: str, room: str, seq: int) -> bytes:
    """One valid room message (store-latency's shape) as a ``mosquitto_pub -l`` line."""
    return room_message(message_id, room, seq, label="chat-throughput") + b"\n"


def _tools() -> tuple[str, str]:
    h.require_mosquitto()
    pub, sub = h.find_tool("mosquitto_pub"), h.find_tool("mosquitto_sub")
    assert pub is not None and sub is not None
    return pub, sub


def _login(gw: h.BrokerProcess) -> list[str]:
    return ["-h", h.HOST, "-p", str(gw.port), *gw.credentials_args()]


def _feed(pubs: list[subprocess.Popen[bytes]], lines: list[bytes], start_ns: int, rate: int) -> int:
    """Write line ``seq`` to a publisher's stdin at ``start_ns + seq / rate``; returns when
    the last one was written (monotonic ns)."""
    interval = 1_000_000_000 / rate
    seq = 0
    while seq < len(lines):
        now = time.monotonic_ns()
        due = min(len(lines), int((now - start_ns) / interval) + 1) if now >= start_ns else 0
        batches: list[list[bytes]] = [[] for _ in pubs]
        while seq < due:
            batches[seq % len(pubs)].append(lines[seq])
            seq += 1
        for proc, batch in zip(pubs, batches, strict=True):
            if batch and proc.stdin is not None:
                proc.stdin.write(b"".join(batch))
                proc.stdin.flush()
        # Pacing a load generator on its schedule, not waiting for a result.
        time.sleep(PACE_NS / 1e9)
    return time.monotonic_ns()


def run_step(
    gw: h.BrokerProcess,
    workdir: Path,
    stack: dict[str, Any],
    *,
    rate: int,
    seconds: float,
    store: bool,
    reader: bool = False,
) -> tuple[Step, dict[str, Any]]:
    """One rate for ``seconds``; with ``store`` the messages go through ``chat/out`` (rules
    and store), otherwise straight to ``chat/pub/<room>``. ``reader`` adds the latency
    samples (the store-latency reader polling the table)."""
    pub, sub = _tools()
    run = uuid.uuid4().hex[:8]
    room = f"tp-{run}"
    # The bare fan-out uses a topic no rule reads: chat/pub/+ is the store rule's FROM, so
    # publishing there straight would still store (and, without a sender, fail into the
    # errorAction's Lambda), which is not "no rules, no store".
    room_topic = f"chat/pub/{room}" if store else f"bench/pub/{room}"
    count = max(int(rate * seconds), 1)
    ids = [f"{run}-{n}" for n in range(count)]
    lines = [room_line(message_id, room, n) for n, message_id in enumerate(ids)]
    outputs = [workdir / f"sub-{run}-{k}.out" for k in range(SUBSCRIBERS)]
    login = _login(gw)
    dynamodb = dynamodb_client(stack)
    extra: dict[str, Any] = {}
    with h.processes() as procs:
        # A retained marker tells when every subscriber is subscribed.
        subprocess.run(
            [pub, *login, "-i", f"tp-mark-{run}", "-t", room_topic, "-q", "1", "-r", "-m", "{}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        subs = []
        for k, out_path in enumerate(outputs):
            with open(out_path, "wb") as out:
                args = [sub, *login, "-i", f"tp-sub-{run}-{k}", "-q", str(QOS), "-t", room_topic]
                proc = h.spawn([*args, "-F", "%U %p"], stdout=out)
            procs.append(proc)
            subs.append(proc)
        h.wait_until(lambda: all(p.stat().st_size > 0 for p in outputs), 30, "subscribers ready")
        topic = "chat/out" if store else room_topic
        pubs = []
        for k in range(PUBLISHERS):
            args = [pub, *login, "-i", f"tp-pub-{run}-{k}", "-t", topic, "-q", str(QOS)]
            proc = subprocess.Popen(
                [*args, "-M", "100", "-l"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
            )
            procs.append(proc)
            pubs.append(proc)
        start_ns = time.monotonic_ns() + 300_000_000
        reader_proc = None
        if reader:
            ids_file = workdir / f"ids-{run}.json"
            ids_file.write_text(json.dumps(ids))
            reader_out = workdir / f"reader-{run}.json"
            reader_proc = store_reader(
                "reader",
                {
                    "stack": stack,
                    "room": room,
                    "rate": rate,
                    "ids_file": str(ids_file),
                    "reader_min_cycle_ns": 5_000_000,
                    "out": str(reader_out),
                    "timeout": seconds + 30,
                },
            )
            procs.append(reader_proc)
            h.expect_line(reader_proc, "ready", 60)
            assert reader_proc.stdin is not None
            reader_proc.stdin.write(f"{start_ns}\n".encode())
            reader_proc.stdin.flush()
        wall_offset = time.time_ns() - time.monotonic_ns()
        last_ns = _feed(pubs, lines, start_ns, rate)
        for proc in pubs:
            assert proc.stdin is not None
            proc.stdin.close()
        deadline = last_ns + int(GRACE_SECONDS * 1e9)
        while time.monotonic_ns() < deadline:
            time.sleep(0.01)  # the deadline is the measurement: nothing to poll for
        delivered_min = min(len(h.sub_arrivals(p).keys() & set(ids)) for p in outputs)
        conv = room_conv(room)
        stored = count_items(dynamodb, messages_table(stack), conv) if store else 0
        gw.check_alive()

        # Let the backlog drain (so the next step starts on an idle stack), counting it.
        def settled() -> bool:
            return all(p.poll() is not None for p in pubs)

        h.wait_until(settled, 120, "publishers done")
        final = {"stored": stored, "delivered": delivered_min}

        def drained() -> bool:
            delivered = min(len(h.sub_arrivals(p).keys() & set(ids)) for p in outputs)
            now = count_items(dynamodb, messages_table(stack), conv) if store else count
            changed = (now, delivered) != (final["stored"], final["delivered"])
            final.update(stored=now, delivered=delivered)
            return (now >= count and delivered >= count) or not changed

        time.sleep(1.0)  # one interval between the counts compared by drained()
        h.wait_until(drained, 300, "backlog drained", interval=2.0)
        if reader_proc is not None:
            reader_proc.wait(seconds + 60)
            seen = json.loads(reader_out.read_text())["seen_ns"]
            interval = 1_000_000_000 // rate
            scheduled = [start_ns + n * interval for n in range(count)]
            extra["stored_ns"] = [s - t for s, t in zip(seen, scheduled, strict=True) if s]
            arrivals = h.sub_arrivals(outputs[0])
            extra["delivered_ns"] = [
                arrivals[i] - wall_offset - t
                for i, t in zip(ids, scheduled, strict=True)
                if i in arrivals
            ]
    for path in outputs:
        path.unlink(missing_ok=True)
    step = Step(
        rate=rate,
        sent=count,
        delivered_min=delivered_min,
        stored=stored,
        stored_final=final["stored"],
        delivered_final=final["delivered"],
        send_seconds=(last_ns - start_ns) / 1e9,
        store=store,
    )
    return step, extra


def ramp(
    gw: h.BrokerProcess,
    workdir: Path,
    stack: dict[str, Any],
    *,
    rates: list[int],
    seconds: float,
    store: bool,
    bisect: int,
) -> tuple[int, list[Step]]:
    """The highest passing rate of ``rates`` (doubling), refined by ``bisect`` halvings."""
    steps: list[Step] = []
    best, failed = 0, None
    for rate in rates:
        step, _ = run_step(gw, workdir, stack, rate=rate, seconds=seconds, store=store)
        steps.append(step)
        if not step.passed:
            failed = rate
            break
        best = rate
    for _ in range(bisect if failed is not None else 0):
        assert failed is not None
        middle = (best + failed) // 2
        if middle in (best, failed):
            break
        step, _ = run_step(gw, workdir, stack, rate=middle, seconds=seconds, store=store)
        steps.append(step)
        if step.passed:
            best = middle
        else:
            failed = middle
    return best, steps


def dynalite_put_rate(stack: dict[str, Any], state_dir: Path, seconds: float) -> float:
    """Single PutItems per second that dynalite takes on its own socket from 16 concurrent
    connections, with items of the store rule's shape."""
    import aiohttp

    from infra.local.node_service import sigv4_probe_headers

    socket_path = state_dir / "dynamodb.sock"
    if not socket_path.exists():
        raise h.BenchmarkError(f"dynalite's socket is not at {socket_path}")
    table = messages_table(stack)
    headers = sigv4_probe_headers("DynamoDB_20120810.PutItem", "dynamodb", "1.0")
    run = uuid.uuid4().hex[:8]

    def item(n: int) -> bytes:
        ts = int(time.time() * 1000)
        sender = "us-east-1:00000000-0000-0000-0000-000000000000"
        mid = f"{run}-{n}"
        body = {
            "conv": {"S": f"room#raw-{run}"},
            "mid": {"S": f"{sender}|{mid}"},
            "tsid": {"S": f"{ts}#{sender}|{mid}"},
            "id": {"S": mid},
            "room": {"S": f"raw-{run}"},
            "body": {"S": "x" * TEXT_BYTES},
            "sender": {"S": sender},
            "ts": {"N": str(ts)},
            "expiresAt": {"N": str(ts // 1000 + 31536000)},
        }
        return json.dumps({"TableName": table, "Item": body}).encode()

    async def measure() -> float:
        connector = aiohttp.UnixConnector(path=str(socket_path), limit=DYNALITE_CONNECTIONS)
        counter = iter(range(10**9))
        done = 0
        async with aiohttp.ClientSession(connector=connector) as session:
            stop_at = time.monotonic() + seconds

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < stop_at:
                    url = "http://localhost/"
                    async with session.post(url, data=item(next(counter)), headers=headers) as r:
                        await r.read()
                        if r.status != 200:
                            raise h.BenchmarkError(f"PutItem answered {r.status}")
                    done += 1

            began = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(DYNALITE_CONNECTIONS)))
            return done / (time.monotonic() - began)

    return asyncio.run(measure())


def _ms(values: list[int], pct: float) -> float | None:
    return round(h.percentile(values, pct) / 1e6, 2) if values else None


def measure(*, seconds: float, rates: list[int], bisect: int) -> list[dict[str, Any]]:
    load = round(os.getloadavg()[0], 2)
    lines: list[dict[str, Any]] = []
    with h.temp_dir("chat-throughput") as workdir, h.gateway(workdir) as gw:
        stack = stack_file(workdir)
        put_rate = dynalite_put_rate(stack, workdir / "gateway-state", min(seconds, 5.0))
        capacity, chat_steps = ramp(
            gw, workdir, stack, rates=rates, seconds=seconds, store=True, bisect=bisect
        )
        fanout, fanout_steps = ramp(
            gw, workdir, stack, rates=rates, seconds=seconds, store=False, bisect=bisect
        )
        half = max(capacity // 2, 1)
        _, samples = run_step(
            gw, workdir, stack, rate=half, seconds=seconds, store=True, reader=True
        )
    lines += [s.line("chat") for s in chat_steps] + [s.line("fanout") for s in fanout_steps]
    common = {
        "name": NAME,
        "seconds_per_step": seconds,
        "subscribers": SUBSCRIBERS,
        "publishers": f"{PUBLISHERS} x mosquitto_pub -l, QoS {QOS}, admin on the plain listener",
        "loadavg_1m": load,
    }
    lines.append(
        {
            **common,
            "metric": "capacity",
            "unit": "messages/s",
            "value": capacity,
            "baseline": round(put_rate, 1),
            "baseline_name": "dynalite single PutItem rate, 16 connections, same items",
            "ratio": h.ratio(capacity, put_rate),
            "fanout_capacity": fanout,
            "ratio_to_fanout": h.ratio(capacity, fanout),
            "tested_up_to": max(s.rate for s in chat_steps),
        }
    )
    for pct in (50.0, 99.0):
        stored_ms = _ms(samples.get("stored_ns", []), pct)
        delivered_ms = _ms(samples.get("delivered_ns", []), pct)
        lines.append(
            {
                **common,
                "metric": f"p{pct:g} at half capacity",
                "unit": "ms",
                "rate_per_s": half,
                # Publish to first strongly consistent read, against publish to delivery.
                "value": stored_ms,
                "baseline": delivered_ms,
                "baseline_name": "publish-to-delivered of the same messages",
                "ratio": h.ratio(stored_ms, delivered_ms),
                "publish_to_stored": stored_ms,
                "publish_to_delivered": delivered_ms,
            }
        )
    return lines


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(seconds=4.0, rates=[250, 500, 1000, 2000, 4000], bisect=0)
    return measure(seconds=20.0, rates=[200, 400, 800, 1600, 3200, 6400, 12800], bisect=3)


def tiny() -> list[dict[str, Any]]:
    """The smoke test's size: two short steps, just enough to exercise every part."""
    return measure(seconds=1.0, rates=[50, 100], bisect=0)


__all__ = ["run", "tiny"]
