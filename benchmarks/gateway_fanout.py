"""gateway-fanout: one publisher to ten subscribers, the gateway against Mosquitto.

Load comes from Mosquitto's own C clients, so the Python gateway is not measured with a
Python client's overhead: ``mosquitto_pub -l`` publishes one message per stdin line (it strips
the ``\\n``, so a line of 200 characters is a 200-byte payload) and each ``mosquitto_sub -C``
exits after its count. Every subscriber prints only the payload length (``-F %l``), which
proves afterwards that each delivery really carried 200 bytes.

Readiness, exactly: before the subscribers start, a retained message is put on a ``ready``
topic. Each subscriber subscribes to the data topic and to ``ready`` in one SUBSCRIBE, so the
retained copy it gets right after SUBACK proves both subscriptions are live, and it gets
exactly one; ``-C`` is therefore ``messages + 1``. Publishing starts once every subscriber
has printed that line. The clock runs from starting the (first) publisher to the last
subscriber's exit; the broker's CPU is read from ``/proc`` over the same interval.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import _harness as h

NAME = "gateway-fanout"
SUBSCRIBERS = 10
PAYLOAD_BYTES = 200
READY_PAYLOAD = b"ready"
STALL_SECONDS = 3.0  # no new deliveries for this long after the publisher is done: give up
# mosquitto_pub -l (2.0) disconnects when the PUBACK for the last message id arrives, and
# message ids wrap at 65,535: past that many lines it quits early (at QoS 1 after ~N % 65535
# messages). So one publisher process sends at most this many; the next one follows it.
PUBLISHER_CHUNK = 50_000


def write_payload_file(path: Path, messages: int, payload_bytes: int) -> None:
    """``messages`` lines of ``payload_bytes`` printable bytes (no CR; -l keeps a CR)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyz0123456789"
    line = (alphabet * (payload_bytes // len(alphabet) + 1))[:payload_bytes] + b"\n"
    with open(path, "wb") as out:
        chunk = line * 1000
        for _ in range(messages // 1000):
            out.write(chunk)
        out.write(line * (messages % 1000))


def write_payload_chunks(workdir: Path, messages: int, payload_bytes: int) -> list[Path]:
    """Payload files for consecutive publisher processes, each at most PUBLISHER_CHUNK lines."""
    sizes = [PUBLISHER_CHUNK] * (messages // PUBLISHER_CHUNK)
    if messages % PUBLISHER_CHUNK:
        sizes.append(messages % PUBLISHER_CHUNK)
    files: dict[int, Path] = {}
    for size in set(sizes):
        files[size] = workdir / f"payloads-{size}.txt"
        write_payload_file(files[size], size, payload_bytes)
    return [files[size] for size in sizes]


def _client_args(broker: h.BrokerProcess) -> list[str]:
    return ["-h", h.HOST, "-p", str(broker.port), *broker.credentials_args()]


def fanout_once(
    broker: h.BrokerProcess,
    workdir: Path,
    payload_files: list[Path],
    *,
    qos: int,
    subscribers: int,
    messages: int,
    payload_bytes: int,
) -> dict[str, Any]:
    """One timed run; returns seconds, deliveries and the broker's CPU seconds."""
    run = uuid.uuid4().hex[:8]
    base = f"bench/fanout/{run}"
    data_topic, ready_topic = f"{base}/data", f"{base}/ready"
    pub = h.find_tool("mosquitto_pub")
    sub = h.find_tool("mosquitto_sub")
    assert pub is not None and sub is not None
    common = _client_args(broker)
    ready_args = ["-t", ready_topic, "-q", "1", "-r", "-m", READY_PAYLOAD.decode()]
    result = subprocess.run(
        [pub, *common, "-i", f"bench-ready-{run}", *ready_args],
        capture_output=True,
        timeout=30,
        check=False,
    )
    if result.returncode != 0:
        raise h.BenchmarkError(f"retained ready publish failed: {result.stderr.decode()}")

    outputs = [workdir / f"sub-{run}-{k}.out" for k in range(subscribers)]
    with h.processes() as procs:
        subs = []
        sub_args = ["-q", str(qos), "-t", data_topic, "-t", ready_topic]
        sub_args += ["-C", str(messages + 1), "-F", "%l"]  # print only each payload's length
        for k, out_path in enumerate(outputs):
            with open(out_path, "wb") as out:
                proc = h.spawn(
                    [sub, *common, "-i", f"bench-sub-{run}-{k}", *sub_args],
                    stdout=out,
                )
            procs.append(proc)
            subs.append(proc)

        def all_ready() -> bool:
            broker.check_alive()
            for proc in subs:
                if proc.poll() is not None:
                    raise h.BenchmarkError(f"mosquitto_sub exited early ({proc.returncode})")
            return all(path.stat().st_size > 0 for path in outputs)

        h.wait_until(all_ready, 30, "every subscriber to receive the retained ready message")

        exit_times: dict[int, float] = {}

        def watch(proc: subprocess.Popen[bytes]) -> None:
            proc.wait()
            exit_times[proc.pid] = time.monotonic()

        watchers = [threading.Thread(target=watch, args=(p,), daemon=True) for p in subs]
        for thread in watchers:
            thread.start()
        # One publisher at a time, each for one chunk; a lock keeps the thread from starting
        # a process after the cleanup below has begun.
        lock, abort, published = threading.Lock(), threading.Event(), threading.Event()
        failures: list[str] = []

        def publish_all() -> None:
            try:
                for n, chunk in enumerate(payload_files):
                    with lock, open(chunk, "rb") as stdin:
                        if abort.is_set():
                            return
                        pub_id = f"bench-pub-{run}-{n}"
                        publisher = h.spawn(
                            [pub, *common, "-i", pub_id, "-q", str(qos), "-t", data_topic, "-l"],
                            stdin=stdin,
                        )
                        procs.append(publisher)
                    if publisher.wait() != 0:
                        failures.append(f"mosquitto_pub failed with {publisher.returncode}")
                        return
            finally:
                published.set()

        publishing = threading.Thread(target=publish_all, daemon=True)
        wall_offset = time.time() - time.monotonic()
        before = broker.counters()
        started = time.monotonic()
        publishing.start()
        try:
            # Generous bounds: the slowest broker here still moves well over 2,000 messages/s.
            deadline = started + 60 + messages * subscribers / 2000
            last_size, last_change = -1, time.monotonic()
            stalled = False
            while len(exit_times) < len(subs):
                broker.check_alive()
                now = time.monotonic()
                if now > deadline:
                    raise h.BenchmarkError(f"{broker.name} fan-out did not finish in time")
                if failures:
                    raise h.BenchmarkError(failures[0])
                if published.is_set():
                    size = sum(path.stat().st_size for path in outputs)
                    if size != last_size:
                        last_size, last_change = size, now
                    elif now - last_change > STALL_SECONDS:
                        stalled = True  # messages were dropped: a subscriber never reaches -C
                        break
                time.sleep(0.05)
            if stalled:
                ends = [
                    exit_times.get(proc.pid, path.stat().st_mtime_ns / 1e9 - wall_offset)
                    for proc, path in zip(subs, outputs, strict=True)
                ]
            else:
                ends = list(exit_times.values())
            used = broker.counters() - before
            if not published.wait(30) or failures:
                raise h.BenchmarkError(failures[0] if failures else "mosquitto_pub did not exit")
        finally:
            with lock:
                abort.set()
    publishing.join(10)
    seconds = max(ends) - started
    delivered = 0
    for path in outputs:
        lines = path.read_bytes().split()
        if not lines or lines[0] != str(len(READY_PAYLOAD)).encode():
            raise h.BenchmarkError(f"{path.name}: the ready message was not first")
        data = lines[1:]
        wrong = [n for n in data if n != str(payload_bytes).encode()]
        if wrong:
            raise h.BenchmarkError(f"payloads of {wrong[0].decode()} bytes, not {payload_bytes}")
        delivered += len(data)
        path.unlink()
    return {
        "seconds": seconds,
        "delivered": delivered,
        "expected": messages * subscribers,
        "cpu_seconds": used.cpu_seconds,
        "kernel_cpu_seconds": used.system_seconds,
    }


def measure(
    *,
    messages: int,
    repetitions: int,
    qos_levels: tuple[int, ...] = (0, 1),
    subscribers: int = SUBSCRIBERS,
    payload_bytes: int = PAYLOAD_BYTES,
) -> list[dict[str, Any]]:
    """Run both brokers alternately ``repetitions`` times per QoS; report the medians."""
    h.require_mosquitto()
    lines: list[dict[str, Any]] = []
    load = round(os.getloadavg()[0], 2)  # other work on the machine skews every figure
    with h.temp_dir("fanout") as workdir, h.gateway(workdir) as gw, h.mosquitto(workdir) as mq:
        payload_files = write_payload_chunks(workdir, messages, payload_bytes)
        for qos in qos_levels:
            runs: dict[str, list[dict[str, Any]]] = {"iotchat": [], "mosquitto": []}
            for _ in range(repetitions):
                for broker in (mq, gw):
                    runs[broker.name].append(
                        fanout_once(
                            broker,
                            workdir,
                            payload_files,
                            qos=qos,
                            subscribers=subscribers,
                            messages=messages,
                            payload_bytes=payload_bytes,
                        )
                    )
            lines += _summarise(runs, load, qos, subscribers, messages, payload_bytes)
    return lines


def _summarise(
    runs: dict[str, list[dict[str, Any]]],
    load: float,
    qos: int,
    subscribers: int,
    messages: int,
    payload_bytes: int,
) -> list[dict[str, Any]]:
    params = {
        "qos": qos,
        "subscribers": subscribers,
        "messages": messages,
        "payload_bytes": payload_bytes,
        "transport": "tcp",
        "repetitions": len(runs["iotchat"]),
    }

    def throughput(r: dict[str, Any]) -> float:
        return r["delivered"] / r["seconds"]

    def cpu_us(r: dict[str, Any]) -> float:
        return r["cpu_seconds"] * 1e6 / max(r["delivered"], 1)

    def delivered_fraction(name: str) -> float:
        return round(min(r["delivered"] / r["expected"] for r in runs[name]), 4)

    completeness = {
        "delivered_fraction": delivered_fraction("iotchat"),
        "baseline_delivered_fraction": delivered_fraction("mosquitto"),
    }

    def kernel_share(name: str) -> float:
        """How much of the broker's CPU was system time (system calls, TCP) rather than user."""
        shares = [r["kernel_cpu_seconds"] / max(r["cpu_seconds"], 1e-9) for r in runs[name]]
        return round(h.median(shares), 3)

    lines = []
    extra: dict[str, dict[str, Any]] = {
        "throughput": {},
        "cpu_us_per_delivery": {
            "kernel_cpu_share": kernel_share("iotchat"),
            "baseline_kernel_cpu_share": kernel_share("mosquitto"),
        },
    }
    targets = {"throughput": "ratio >= 1.0", "cpu_us_per_delivery": "ratio <= 1.0"}
    for metric, unit, fn, digits in (
        ("throughput", "deliveries/s", throughput, 0),
        ("cpu_us_per_delivery", "us", cpu_us, 2),
    ):
        ours = [fn(r) for r in runs["iotchat"]]
        theirs = [fn(r) for r in runs["mosquitto"]]
        value, baseline = h.median(ours), h.median(theirs)
        lines.append(
            {
                "name": NAME,
                "metric": metric,
                "unit": unit,
                **params,
                "value": round(value, digits),
                "baseline": round(baseline, digits),
                "baseline_name": "mosquitto",
                "ratio": h.ratio(value, baseline),
                "samples": [round(v, digits) for v in ours],
                "baseline_samples": [round(v, digits) for v in theirs],
                **completeness,
                "target": targets[metric],
                "loadavg_1m": load,
                **extra[metric],
            }
        )
    return lines


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(messages=20_000, repetitions=2)
    return measure(messages=200_000, repetitions=3)
