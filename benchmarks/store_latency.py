"""store-latency: how long after a publish a room message is readable in DynamoDB, at 200 msg/s.

On a whole local stack (``iotchat up``: gateway, rules engine, Lambda runtime, dynalite, in a
temporary state directory on ephemeral ports), four paho-mqtt clients publish valid room
messages (docs/protocol.md) to ``chat/out`` at QoS 1, together 200 messages/s on a fixed
deadline schedule. The rule ``chat_room_message`` republishes each one to ``chat/pub/<room>``
and the rule ``chat_room_store`` writes it to ``<stack>-messages`` (a ``dynamoDBv2`` PutItem).

Two times per message, both from ``time.monotonic_ns()`` (one system-wide clock, so valid
across processes), measured from just before its publish:

- **stored**: the first strongly consistent read that returns it. A reader process queries the
  ``byTime`` index through the edge API with the stack file's admin credentials, as a user's
  SDK would, newest first, over a moving window: ``conv = room#<room> AND tsid >= W`` where W
  is the scheduled publish time of the oldest message it has not seen yet (minus a margin).
  ``tsid`` starts with the rules engine's arrival time, which is never before the publish, so
  the window holds every message not yet seen, also one stored out of order, and stays a few
  items long. One Query per poll covers all outstanding messages; polling GetItem per
  outstanding message would cost one request per message per poll (about ten times the
  requests at this rate) and load the same dynalite process whose writes are being timed.
  The reported time is when the Query's response arrived (``value``: an upper bound); the
  start of the Query before it, which did not return the item yet, is a lower bound
  (``value_lower_bound``). The two are one poll cycle apart (``reader_cycle_p50_ms``). The
  reader's own cost lands on the stack: each Query goes through the edge API and dynalite.
- **delivered** (the baseline): arrival of the same message at a subscriber of
  ``chat/pub/<room>``, i.e. the republish path alone.

Every message must be stored exactly once: after the run the room's items are counted. The
goal (store p99 <= 50 ms at 200 msg/s) is reported, never asserted.
"""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support.messages_table import count_items, room_conv

from . import _harness as h

NAME = "store-latency"
RATE = 200  # messages per second, all publishers together
PUBLISHERS = 4  # 50 msg/s each: inside AWS IoT's 100 publishes/s per connection
QOS = 1
WARMUP_SECONDS = 1.0  # first use of the rule action's worker threads (a boto3 client each)
TEXT_BYTES = 100
READER_MIN_CYCLE_NS = 5_000_000  # at most 200 Queries/s: as many reads as writes
WINDOW_MARGIN_MS = 10  # slack for millisecond truncation of the wall clock in the window
MESSAGES_TABLE = "{stack}-messages"
BY_TIME = "byTime"
LOAD_CLIENT = "paho-mqtt over the plain TCP listener, admin credentials (test/test), MQTT 3.1.1"
STORE_TARGET_MS = 50.0


# --------------------------------------------------------------------------- shared helpers


def stack_file(workdir: Path) -> dict[str, Any]:
    """The stack file ``h.gateway`` left in ``workdir`` (endpoints, admin credentials)."""
    return json.loads((workdir / "gateway-state" / "stack.json").read_text())


def dynamodb_client(stack: dict[str, Any]) -> Any:
    """boto3 DynamoDB through the stack's edge API, signed with the admin key."""
    import boto3

    return boto3.client(
        "dynamodb",
        endpoint_url=stack["dynamodb"]["endpoint"],
        region_name=stack["region"],
        aws_access_key_id=stack["admin"]["accessKeyId"],
        aws_secret_access_key=stack["admin"]["secretAccessKey"],
    )


def messages_table(stack: dict[str, Any]) -> str:
    return MESSAGES_TABLE.format(stack=stack["stackName"])


mqtt_client = h.paho_client


def no_delay(client: Any) -> None:
    """Turn Nagle off on a connected paho client's socket (paho leaves it on).

    With it on, a request sent right after the client acknowledged a delivery waits for the
    broker's delayed ACK (about 40 ms on Linux): the client's latency, not the backend's.
    """
    client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def stack_cpu_by_process(root: int) -> dict[str, float]:
    """CPU seconds so far of the stack's processes, grouped: the ``iotchat up`` process
    (gateway, rules engine, edge API, Lambda runtime), dynalite, and the rest (kinesalite,
    Lambda workers)."""
    groups = {"iotchat_up": 0.0, "dynalite": 0.0, "other": 0.0}
    for pid in h.process_tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        fields_ = stat.rsplit(")", 1)[1].split()
        seconds = (int(fields_[11]) + int(fields_[12])) / h.CLK_TCK
        group = "iotchat_up" if pid == root else "dynalite" if b"dynalite" in cmdline else "other"
        groups[group] += seconds
    return groups


def room_message(message_id: str, room: str, seq: int, label: str = "store-latency") -> bytes:
    """A valid room message (docs/protocol.md) of about TEXT_BYTES characters of text."""
    head = f"{label} message {seq} "
    body = {
        "v": 1,
        "type": "message",
        "id": message_id,
        "room": room,
        "body": head + "x" * max(TEXT_BYTES - len(head), 1),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _wait_until_ns(target_ns: int) -> None:
    """Pace to a deadline (the schedule, not a drifting sleep)."""
    while (remaining := target_ns - time.monotonic_ns()) > 0:
        time.sleep(min(remaining / 1e9, 0.005))


def _service(by_socket: dict[Any, Any], until_ns: int) -> None:
    """Run the paho clients' I/O (PUBACKs, writes) until ``until_ns``, without threads."""
    while True:
        remaining = until_ns - time.monotonic_ns()
        writers = [s for s, c in by_socket.items() if c.want_write()]
        timeout = max(min(remaining / 1e9, 0.005), 0.0)
        readable, writable, _ = select.select(list(by_socket), writers, [], timeout)
        for sock in readable:
            by_socket[sock].loop_read()
        for sock in writable:
            by_socket[sock].loop_write()
        if remaining <= 0:
            return


def _connect_all(clients: list[Any], port: int, timeout: float = 15.0) -> dict[Any, Any]:
    connected: set[int] = set()
    for k, client in enumerate(clients):

        def on_connect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None, k: int = k) -> None:
            if rc.is_failure:
                raise SystemExit(f"client {k} refused: {rc}")
            connected.add(k)

        client.on_connect = on_connect
        client.connect(h.HOST, port, keepalive=60)
        no_delay(client)
    by_socket = {c.socket(): c for c in clients}
    deadline = time.monotonic() + timeout
    while len(connected) < len(clients):
        if time.monotonic() > deadline:
            raise SystemExit("MQTT clients could not connect")
        _service(by_socket, time.monotonic_ns() + 20_000_000)
    return by_socket


# --------------------------------------------------------------------------- child processes


def publisher_main(config: dict[str, Any]) -> None:
    """Publish ``ids[seq]`` at ``start + seq / rate``, round robin over the clients."""
    ids: list[str] = json.loads(Path(config["ids_file"]).read_text())
    clients = [
        mqtt_client(f"{config['client_prefix']}-{k}", config["username"], config["password"])
        for k in range(config["publishers"])
    ]
    for client in clients:
        client.max_inflight_messages_set(100)
    by_socket = _connect_all(clients, config["port"])
    print("ready", flush=True)
    start_ns = int(sys.stdin.readline())
    interval_ns = 1_000_000_000 // config["rate"]
    room = config["room"]
    sent_ns: list[int] = []
    scheduled_lag_ns: list[int] = []
    next_misc = 0.0
    for seq, message_id in enumerate(ids):
        target = start_ns + seq * interval_ns
        _service(by_socket, target)
        payload = room_message(message_id, room, seq)
        now = time.monotonic_ns()
        clients[seq % len(clients)].publish("chat/out", payload, qos=QOS)
        sent_ns.append(now)
        scheduled_lag_ns.append(now - target)
        if time.monotonic() >= next_misc:  # keep-alive bookkeeping, not per packet
            next_misc = time.monotonic() + 0.5
            for client in clients:
                client.loop_misc()
    # Let the last PUBACKs arrive so nothing is cut off before it left.
    drain_until = time.monotonic() + 10
    while time.monotonic() < drain_until and any(
        c.want_write() or getattr(c, "_out_messages", None) for c in clients
    ):
        _service(by_socket, time.monotonic_ns() + 10_000_000)
    for client in clients:
        client.disconnect()
    Path(config["out"]).write_text(json.dumps({"sent_ns": sent_ns, "lag_ns": scheduled_lag_ns}))


def subscriber_main(config: dict[str, Any]) -> None:
    """One subscriber of ``chat/pub/<room>``: the first arrival time of each message id."""
    ids: list[str] = json.loads(Path(config["ids_file"]).read_text())
    index = {message_id: seq for seq, message_id in enumerate(ids)}
    received_ns = [0] * len(ids)
    got = [0]
    subscribed: list[bool] = []
    read_at = [0]
    client = mqtt_client(config["client_id"], config["username"], config["password"])

    def on_message(_c: Any, _u: Any, msg: Any) -> None:
        seq = index.get(json.loads(msg.payload).get("id"))
        if seq is not None and not received_ns[seq]:
            received_ns[seq] = read_at[0]
            got[0] += 1

    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.append(True)
    by_socket = _connect_all([client], config["port"])
    client.subscribe(f"chat/pub/{config['room']}", qos=QOS)
    deadline = time.monotonic() + 15
    while not subscribed:
        if time.monotonic() > deadline:
            raise SystemExit("no SUBACK")
        _service(by_socket, time.monotonic_ns() + 10_000_000)
    print("ready", flush=True)
    sock = client.socket()
    stop_at = time.monotonic() + config["timeout"]
    next_misc = 0.0
    while got[0] < len(ids) and time.monotonic() < stop_at:
        readable, writable, _ = select.select(
            [sock], [sock] if client.want_write() else [], [], 0.05
        )
        if readable:
            read_at[0] = time.monotonic_ns()  # before paho decodes what is waiting
            client.loop_read()
        if writable:
            client.loop_write()
        if time.monotonic() >= next_misc:
            next_misc = time.monotonic() + 0.5
            client.loop_misc()
    client.disconnect()
    Path(config["out"]).write_text(json.dumps({"received_ns": received_ns}))


def reader_main(config: dict[str, Any]) -> None:
    """Poll the ``byTime`` index (strongly consistent) for the window of unseen messages."""
    ids: list[str] = json.loads(Path(config["ids_file"]).read_text())
    index = {message_id: seq for seq, message_id in enumerate(ids)}
    stack = config["stack"]
    dynamodb = dynamodb_client(stack)
    table = messages_table(stack)
    conv = f"room#{config['room']}"

    def query(watermark_ms: int) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        start = None
        while True:
            request: dict[str, Any] = {
                "TableName": table,
                "IndexName": BY_TIME,
                "KeyConditionExpression": "conv = :c AND tsid >= :w",
                "ExpressionAttributeValues": {
                    ":c": {"S": conv},
                    ":w": {"S": f"{watermark_ms:013d}"},
                },
                "ScanIndexForward": False,
                "ConsistentRead": True,
                "Limit": 200,
            }
            if start:
                request["ExclusiveStartKey"] = start
            response = dynamodb.query(**request)
            items += response.get("Items", [])
            start = response.get("LastEvaluatedKey")
            if not start:
                return items

    query(int(time.time() * 1000))  # connection and client warm before the clock starts
    print("ready", flush=True)
    start_ns = int(sys.stdin.readline())
    interval_ns = 1_000_000_000 // config["rate"]
    wall_offset_ns = time.time_ns() - time.monotonic_ns()
    seen_ns = [0] * len(ids)
    # The item was not there when the previous Query started: a lower bound of when it was.
    missed_ns = [0] * len(ids)
    oldest = 0  # lowest sequence number not seen yet
    stop_at = time.monotonic() + config["timeout"]
    durations_ns: list[int] = []
    cycles_ns: list[int] = []
    items_read = 0
    last_start = 0
    while oldest < len(ids) and time.monotonic() < stop_at:
        due_ns = start_ns + oldest * interval_ns
        _wait_until_ns(max(due_ns, last_start + config["reader_min_cycle_ns"]))
        began = time.monotonic_ns()
        watermark_ms = (due_ns + wall_offset_ns) // 1_000_000 - WINDOW_MARGIN_MS
        items = query(watermark_ms)
        answered = time.monotonic_ns()
        items_read += len(items)
        durations_ns.append(answered - began)
        if last_start:
            cycles_ns.append(began - last_start)
        for item in items:
            seq = index.get(item["id"]["S"])
            if seq is not None and not seen_ns[seq]:
                seen_ns[seq] = answered
                missed_ns[seq] = last_start
        last_start = began
        while oldest < len(ids) and seen_ns[oldest]:
            oldest += 1
    result = {
        "seen_ns": seen_ns,
        "missed_ns": missed_ns,
        "queries": len(durations_ns),
        "items_read": items_read,
        "query_ns": durations_ns,
        "cycle_ns": cycles_ns,
    }
    Path(config["out"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------- driver


def _child(role: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
    return h.spawn_role("benchmarks.store_latency", role, config)


def _ms(values: list[int], pct: float) -> float:
    return h.percentile(values, pct) / 1e6


def run_once(
    gw: h.BrokerProcess,
    workdir: Path,
    stack: dict[str, Any],
    *,
    seconds: float,
    rate: int = RATE,
    warmup_seconds: float = WARMUP_SECONDS,
    publishers: int = PUBLISHERS,
    reader_min_cycle_ns: int = READER_MIN_CYCLE_NS,
) -> dict[str, Any]:
    """One timed run; per message (warm-up included) send, delivery and first-read times."""
    run = uuid.uuid4().hex[:8]
    room = f"store-{run}"
    total = int((seconds + warmup_seconds) * rate)
    ids = [str(uuid.uuid4()) for _ in range(total)]
    ids_file = workdir / f"ids-{run}.json"
    ids_file.write_text(json.dumps(ids))
    outs = {role: workdir / f"{role}-{run}.json" for role in ("publisher", "subscriber", "reader")}
    common: dict[str, Any] = {
        "port": gw.port,
        "username": gw.username,
        "password": gw.password,
        "room": room,
        "rate": rate,
        "ids_file": str(ids_file),
        "timeout": seconds + warmup_seconds + 30,
    }
    with h.processes() as procs:
        children = {
            "subscriber": _child(
                "subscriber",
                {**common, "client_id": f"bench-store-sub-{run}", "out": str(outs["subscriber"])},
            ),
            "reader": _child(
                "reader",
                {
                    **common,
                    "stack": stack,
                    "reader_min_cycle_ns": reader_min_cycle_ns,
                    "out": str(outs["reader"]),
                },
            ),
            "publisher": _child(
                "publisher",
                {
                    **common,
                    "client_prefix": f"bench-store-pub-{run}",
                    "publishers": publishers,
                    "out": str(outs["publisher"]),
                },
            ),
        }
        procs.extend(children.values())
        for proc in children.values():
            h.expect_line(proc, "ready", 60)
        start_ns = time.monotonic_ns() + 200_000_000
        for role in ("reader", "publisher"):
            stdin = children[role].stdin
            assert stdin is not None
            stdin.write(f"{start_ns}\n".encode())
            stdin.flush()
        cpu_before = stack_cpu_by_process(gw.pid)
        wall_before = time.monotonic()
        for role, proc in children.items():
            if proc.wait(common["timeout"] + 30) != 0:
                raise h.BenchmarkError(f"store-latency {role} failed ({proc.returncode})")
        cpu_after = stack_cpu_by_process(gw.pid)
        wall = time.monotonic() - wall_before
    gw.check_alive()
    results = {role: json.loads(path.read_text()) for role, path in outs.items()}
    for path in (*outs.values(), ids_file):
        path.unlink()
    stored = count_items(dynamodb_client(stack), messages_table(stack), room_conv(room))
    return {
        "room": room,
        "sent": len(results["publisher"]["sent_ns"]),
        "stored": stored,
        "warmup": int(warmup_seconds * rate),
        "reader_min_cycle_ms": reader_min_cycle_ns / 1e6,
        "stack_cpu_seconds": {group: cpu_after[group] - cpu_before[group] for group in cpu_after},
        "wall_seconds": wall,
        **results["publisher"],
        **results["subscriber"],
        **results["reader"],
    }


def summarize(result: dict[str, Any], *, seconds: float, rate: int, load: float) -> list[dict]:
    sent_ns, warmup = result["sent_ns"], result["warmup"]
    store_ns = [s - t for s, t in zip(result["seen_ns"], sent_ns, strict=False) if s]
    delivery_ns = [r - t for r, t in zip(result["received_ns"], sent_ns, strict=False) if r]
    timed = range(warmup, len(sent_ns))
    store = [result["seen_ns"][i] - sent_ns[i] for i in timed if result["seen_ns"][i]]
    store_lower = [
        max(result["missed_ns"][i] - sent_ns[i], 0) for i in timed if result["seen_ns"][i]
    ]
    delivery = [result["received_ns"][i] - sent_ns[i] for i in timed if result["received_ns"][i]]
    if not store or not delivery:
        raise h.BenchmarkError("no store or delivery samples")
    sent = result["sent"]
    span_ns = max(sent_ns[-1] - sent_ns[0], 1)
    params = {
        "rate_per_s": rate,
        "achieved_rate_per_s": round((sent - 1) * 1e9 / span_ns, 1),
        "publish_lag_p99_ms": round(_ms(result["lag_ns"], 99), 3),
        "seconds": seconds,
        "warmup_messages": warmup,
        "qos": QOS,
        "publishers": PUBLISHERS,
        "payload_text_chars": TEXT_BYTES,
        "load_client": LOAD_CLIENT,
        "reader": "Query byTime newest first, ConsistentRead, window tsid >= oldest unseen "
        "message's scheduled publish time - 10 ms, through the edge API with the admin key",
        "reader_min_cycle_ms": result["reader_min_cycle_ms"],
        "reader_queries_per_s": round(result["queries"] / max(span_ns / 1e9, 1e-9), 1),
        "reader_items_per_query": round(result["items_read"] / max(result["queries"], 1), 1),
        "reader_query_p50_ms": round(_ms(result["query_ns"], 50), 3),
        "reader_cycle_p50_ms": round(_ms(result["cycle_ns"], 50), 3)
        if result["cycle_ns"]
        else None,
        "reader_cycle_p99_ms": round(_ms(result["cycle_ns"], 99), 3)
        if result["cycle_ns"]
        else None,
        "messages_sent": sent,
        "messages_stored": result["stored"],
        "messages_seen_by_reader": len(store_ns),
        "messages_delivered": len(delivery_ns),
        "stored_fraction": round(result["stored"] / sent, 4) if sent else 0.0,
        # Share of one core each part of the stack used while the load ran (0..2 here), and
        # its CPU time per message sent (reader queries included).
        "stack_cpu_share": {
            group: round(cpu / max(result["wall_seconds"], 1e-9), 3)
            for group, cpu in result["stack_cpu_seconds"].items()
        },
        "stack_cpu_ms_per_message": {
            group: round(cpu * 1000 / max(sent, 1), 3)
            for group, cpu in result["stack_cpu_seconds"].items()
        },
        "samples_count": len(store),
        "baseline_samples_count": len(delivery),
        "loadavg_1m": load,
    }
    lines = []
    for metric, pct in (("p50", 50.0), ("p95", 95.0), ("p99", 99.0), ("max", 100.0)):
        value, baseline = _ms(store, pct), _ms(delivery, pct)
        line = {
            "name": NAME,
            "metric": metric,
            "unit": "ms",
            # When the reader first returned the item: an upper bound of when it was stored.
            "value": round(value, 3),
            # When the Query before that one started (it did not return the item yet).
            "value_lower_bound": round(_ms(store_lower, pct), 3),
            "baseline": round(baseline, 3),
            "baseline_name": "delivery of the same messages on chat/pub/<room> (republish rule)",
            "ratio": h.ratio(value, baseline),
            **params,
        }
        if metric == "p99":
            line["target"] = f"store p99 <= {STORE_TARGET_MS:g} ms"
            line["target_met"] = value <= STORE_TARGET_MS
        lines.append(line)
    return lines


def measure(
    *,
    seconds: float,
    rate: int = RATE,
    warmup_seconds: float = WARMUP_SECONDS,
    reader_min_cycle_ms: float = READER_MIN_CYCLE_NS / 1e6,
) -> list[dict[str, Any]]:
    load = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    with h.temp_dir("store-latency") as workdir, h.gateway(workdir) as gw:
        stack = stack_file(workdir)
        result = run_once(
            gw,
            workdir,
            stack,
            seconds=seconds,
            rate=rate,
            warmup_seconds=warmup_seconds,
            reader_min_cycle_ns=int(reader_min_cycle_ms * 1e6),
        )
    return summarize(result, seconds=seconds, rate=rate, load=load)


def run(quick: bool = False) -> list[dict[str, Any]]:
    return measure(seconds=5 if quick else 30)


if __name__ == "__main__":
    h.run_role({"publisher": publisher_main, "subscriber": subscriber_main, "reader": reader_main})
