"""gateway-latency: end-to-end delivery latency at a steady 500 messages/s, QoS 1, ten subscribers.

A paho publisher in its own process publishes 200-byte payloads on a fixed schedule, each
carrying ``time.monotonic_ns()`` taken just before the publish; ten paho subscribers share
one other process and one thread (a ``select`` loop over their sockets, so no GIL hand-offs
between client threads inflate the figures) and record ``monotonic_ns() - sent``, the clock
read just before a readable socket is read, so the time paho spends decoding the other nine
subscribers' copies is not charged to the broker.
CLOCK_MONOTONIC is one system-wide clock on Linux, so the difference is valid across
processes. The same load runs against the gateway and against Mosquitto, one after the other.
"""

from __future__ import annotations

import json
import os
import resource
import select
import struct
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from . import _harness as h

NAME = "gateway-latency"
RATE = 500  # messages per second
SUBSCRIBERS = 10
PAYLOAD_BYTES = 200
QOS = 1
WARMUP_MESSAGES = 50  # the first messages (new TCP connections, cold caches) are not counted
_HEADER = struct.Struct("!qI")  # send time (monotonic ns), sequence number


_paho_client = h.paho_client


# --------------------------------------------------------------------------- child processes


def publisher_main(config: dict[str, Any]) -> None:
    """Publish ``count`` messages at ``rate``/s once told ``go`` on stdin."""
    client = _paho_client(config["client_id"], config["username"], config["password"])
    client.max_inflight_messages_set(100)
    connected: list[bool] = []
    client.on_connect = lambda *args: connected.append(True)
    client.connect(h.HOST, config["port"], keepalive=60)
    deadline = time.monotonic() + 10
    while not connected and time.monotonic() < deadline:
        client.loop(timeout=0.05)
    if not connected:
        raise SystemExit("publisher could not connect")
    print("connected", flush=True)
    sys.stdin.readline()  # "go"
    topic, count = config.get("publish_topic", config["topic"]), config["count"]
    interval_ns = 1_000_000_000 // config["rate"]
    padding = b"\0" * (config["payload_bytes"] - _HEADER.size)
    chat = config.get("chat_room")
    start = time.monotonic_ns() + 1_000_000
    for seq in range(count):
        target = start + seq * interval_ns
        while (now := time.monotonic_ns()) < target:
            client.loop(timeout=min((target - now) / 1e9, 0.005))
        if chat:
            payload = chat_message(chat, time.monotonic_ns(), seq, config["payload_bytes"])
        else:
            payload = _HEADER.pack(time.monotonic_ns(), seq) + padding
        client.publish(topic, payload, qos=QOS)
    # Let the last PUBACKs arrive so nothing is cut off before it left.
    drain_until = time.monotonic() + 5
    while client.want_write() or (time.monotonic() < drain_until and _inflight(client)):
        client.loop(timeout=0.01)
    client.disconnect()


def chat_message(room: str, sent_ns: int, seq: int, size: int) -> bytes:
    """A chat envelope (JSON, as rules need) carrying the send time, padded to ``size``."""
    body = {"type": "message", "id": f"{seq:08d}", "room": room, "sent": sent_ns, "seq": seq}
    base = len(json.dumps({**body, "body": ""}, separators=(",", ":")))
    body["body"] = "x" * max(size - base, 0)
    return json.dumps(body, separators=(",", ":")).encode()


def _sent_and_seq(payload: bytes) -> tuple[int, int]:
    if payload[:1] == b"{":
        body = json.loads(payload)
        return body["sent"], body["seq"]
    return _HEADER.unpack_from(payload)


def _inflight(client: Any) -> int:
    return len(getattr(client, "_out_messages", {}))


def subscribers_main(config: dict[str, Any]) -> None:
    """Ten clients, one thread: print ``ready`` after every SUBACK, then record latencies."""
    count, subscribers = config["count"], config["subscribers"]
    latencies: list[list[int]] = [[] for _ in range(subscribers)]
    subscribed: set[int] = set()
    read_at = [0]  # when the socket being read was found readable
    clients = []
    for k in range(subscribers):
        client_id = f"{config['client_prefix']}-{k}"
        client = _paho_client(client_id, config["username"], config["password"])

        def on_connect(c: Any, _u: Any, _f: Any, rc: Any, _p: Any = None, k: int = k) -> None:
            if rc.is_failure:
                raise SystemExit(f"subscriber {k} refused: {rc}")
            c.subscribe(config["topic"], qos=QOS)

        def on_subscribe(*_args: Any, k: int = k) -> None:
            subscribed.add(k)

        def on_message(_c: Any, _u: Any, msg: Any, k: int = k) -> None:
            received = read_at[0]
            sent, seq = _sent_and_seq(msg.payload)
            if seq >= WARMUP_MESSAGES:
                latencies[k].append(received - sent)
            else:
                latencies[k].append(-1)  # counted as received, not as a sample

        client.on_connect = on_connect
        client.on_subscribe = on_subscribe
        client.on_message = on_message
        client.connect(h.HOST, config["port"], keepalive=60)
        clients.append(client)

    by_socket = {c.socket(): c for c in clients}
    started = time.monotonic()
    next_misc = 0.0
    announced = False
    deadline = time.monotonic() + config["timeout"]
    last_progress, last_total = time.monotonic(), -1
    while time.monotonic() < deadline:
        writers = [s for s, c in by_socket.items() if c.want_write()]
        readable, writable, _ = select.select(list(by_socket), writers, [], 0.05)
        for sock in readable:
            read_at[0] = time.monotonic_ns()
            by_socket[sock].loop_read()
        for sock in writable:
            by_socket[sock].loop_write()
        if (now := time.monotonic()) >= next_misc:  # keep-alive bookkeeping, not per packet
            next_misc = now + 0.5
            for client in clients:
                client.loop_misc()
        if not announced and len(subscribed) == subscribers:
            print("ready", flush=True)
            announced = True
        total = sum(len(x) for x in latencies)
        if total >= count * subscribers:
            break
        now = time.monotonic()
        if total != last_total:
            last_total, last_progress = total, now
        elif announced and total and now - last_progress > 5:
            break  # messages were lost; report what arrived
    for client in clients:
        if client.want_write():
            client.loop_write()
        client.disconnect()
    received = sum(len(x) for x in latencies)
    samples = [v for series in latencies for v in series if v >= 0]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "received": received,
        "latencies_ns": samples,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "busy_seconds": time.monotonic() - started,
    }
    Path(config["out"]).write_text(json.dumps(result))


# --------------------------------------------------------------------------- driver


def _child(role: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
    return h.spawn_role("benchmarks.gateway_latency", role, config)


def latency_once(
    broker: h.BrokerProcess,
    workdir: Path,
    *,
    seconds: float,
    rate: int = RATE,
    subscribers: int = SUBSCRIBERS,
    payload_bytes: int = PAYLOAD_BYTES,
    through_rule: bool = False,
) -> dict[str, Any]:
    """One timed run. ``through_rule``: publish chat envelopes on ``chat/out`` and listen on
    ``chat/pub/<room>``, so every message crosses the rules engine's republish."""
    run = uuid.uuid4().hex[:8]
    count = max(int(seconds * rate), WARMUP_MESSAGES + 1)
    common: dict[str, Any] = {
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "topic": f"bench/latency/{run}",
    }
    if through_rule:
        room = f"bench-{run}"
        common.update(topic=f"chat/pub/{room}", publish_topic="chat/out", chat_room=room)
    out = workdir / f"latency-{run}.json"
    with h.processes() as procs:
        subs = _child(
            "subscribers",
            {
                **common,
                "client_prefix": f"bench-lat-sub-{run}",
                "subscribers": subscribers,
                "count": count,
                "out": str(out),
                "timeout": seconds + 60,
            },
        )
        procs.append(subs)
        h.expect_line(subs, "ready", 30)
        pub = _child(
            "publisher",
            {
                **common,
                "client_id": f"bench-lat-pub-{run}",
                "count": count,
                "rate": rate,
                "payload_bytes": payload_bytes,
            },
        )
        procs.append(pub)
        h.expect_line(pub, "connected", 30)
        assert pub.stdin is not None
        pub.stdin.write(b"go\n")
        pub.stdin.flush()
        if pub.wait(seconds + 60) != 0:
            raise h.BenchmarkError(f"latency publisher failed ({pub.returncode})")
        if subs.wait(seconds + 60) != 0:
            raise h.BenchmarkError(f"latency subscribers failed ({subs.returncode})")
    result = json.loads(out.read_text())
    out.unlink()
    broker.check_alive()
    return {"expected": count * subscribers, **result}


def measure(
    *,
    seconds: float,
    repetitions: int = 1,
    rate: int = RATE,
    subscribers: int = SUBSCRIBERS,
    payload_bytes: int = PAYLOAD_BYTES,
) -> list[dict[str, Any]]:
    h.require_mosquitto()
    load = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    pooled: dict[str, list[int]] = {"iotchat": [], "mosquitto": []}
    received: dict[str, list[float]] = {"iotchat": [], "mosquitto": []}
    client_busy: list[float] = []  # share of a core the ten subscribers' process used
    with h.temp_dir("latency") as workdir, h.gateway(workdir) as gw, h.mosquitto(workdir) as mq:
        for _ in range(repetitions):
            for broker in (mq, gw):
                result = latency_once(
                    broker,
                    workdir,
                    seconds=seconds,
                    rate=rate,
                    subscribers=subscribers,
                    payload_bytes=payload_bytes,
                )
                pooled[broker.name] += result["latencies_ns"]
                received[broker.name].append(result["received"] / result["expected"])
                client_busy.append(result["cpu_seconds"] / max(result["busy_seconds"], 1e-9))
    for name, samples in pooled.items():
        if not samples:
            raise h.BenchmarkError(f"no latency samples from {name}")
    params = {
        "qos": QOS,
        "subscribers": subscribers,
        "rate_per_s": rate,
        "seconds": seconds,
        "messages": max(int(seconds * rate), WARMUP_MESSAGES + 1),
        "warmup_messages": WARMUP_MESSAGES,
        "payload_bytes": payload_bytes,
        "transport": "tcp",
        "repetitions": repetitions,
        "loadavg_1m": load,
        # Far below 1.0 means the subscribers' process kept up and did not queue messages.
        "subscriber_process_cpu_share": round(max(client_busy), 3),
    }
    counts = {
        "samples_count": len(pooled["iotchat"]),
        "baseline_samples_count": len(pooled["mosquitto"]),
        "delivered_fraction": round(min(received["iotchat"]), 4),
        "baseline_delivered_fraction": round(min(received["mosquitto"]), 4),
    }
    return h.latency_lines(
        NAME, params, pooled["iotchat"], pooled["mosquitto"], "mosquitto", lambda _: counts
    )


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(seconds=3, repetitions=1)
    return measure(seconds=10, repetitions=2)


if __name__ == "__main__":
    h.run_role({"publisher": publisher_main, "subscribers": subscribers_main})
