"""gateway-connections: memory per idle connection, and SigV4 WebSocket connects per second.

(a) A raw asyncio client in its own process opens N MQTT connections over TCP (CONNECT,
CONNACK, then idle) and holds them, then a second one N more; the broker's resident memory
(VmRSS) is read before, between and after. The memory per connection is the second batch's
growth of the broker's own process, divided by N: the first batch also fills what the process
had freed since it started, and ``iotchat up``'s children (dynalite, Lambda workers running
the presence events the connects cause) are not connection memory (their growth is reported
beside it). Mosquitto gets the same connections as the baseline.

(b) Workers in another process do full connects over WSS, one after another each: TLS
handshake, WebSocket upgrade to a SigV4-presigned ``/mqtt`` URL, MQTT CONNECT and CONNACK,
DISCONNECT and close. Mosquitto cannot check SigV4, so this one has no baseline.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import select
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support import raw_mqtt

from . import _harness as h

NAME = "gateway-connections"
MIB = 1024 * 1024


# --------------------------------------------------------------------------- child processes


async def idle_main(config: dict[str, Any]) -> None:
    """Open ``count`` connections, report, hold them until stdin closes."""
    h.raise_nofile(config["count"] + 256)
    semaphore = asyncio.Semaphore(config["concurrency"])
    held: list[asyncio.StreamWriter] = []
    port, prefix = config["port"], config["client_prefix"]

    async def one(i: int) -> None:
        async with semaphore:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(h.HOST, port), 30)
            try:
                packet = raw_mqtt.connect_packet(
                    f"{prefix}-{i}",
                    raw_mqtt.V311,
                    username=config["username"],
                    password=config["password"],
                    keep_alive=config["keep_alive"],
                )
                writer.write(packet)
                connack = await asyncio.wait_for(reader.readexactly(4), 30)
            except BaseException:
                writer.close()
                raise
            if not raw_mqtt.connack_ok(connack):
                writer.close()
                raise RuntimeError(f"CONNACK {connack.hex()}")
            held.append(writer)

    started = time.monotonic()
    results = await asyncio.gather(
        *(one(i) for i in range(config["count"])), return_exceptions=True
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    report = {
        "connected": len(held),
        "failed": len(errors),
        "first_error": repr(errors[0]) if errors else None,
        "seconds": time.monotonic() - started,
    }
    print(json.dumps(report), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for writer in held:
        writer.close()


async def wss_main(config: dict[str, Any]) -> None:
    """``count`` full SigV4 WSS connects by ``workers`` concurrent workers, timed."""

    from infra.local.sigv4 import presign_url

    context = ssl.create_default_context(cafile=config["ca_file"])
    host = f"{h.HOST}:{config['port']}"
    total, prefix = config["count"], config["client_prefix"]
    numbers = itertools.count()
    errors: list[BaseException] = []

    async def connect_once(i: int) -> None:
        url = presign_url(host, config["access_key"], config["secret_key"], region=config["region"])
        await h.wss_mqtt_session(url, context, f"{prefix}-{i}")

    async def worker() -> None:
        while (i := next(numbers)) < total:
            try:
                await connect_once(i)
            except Exception as exc:
                errors.append(exc)

    print("ready", flush=True)
    sys.stdin.readline()
    cpu_before = os.times()
    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(config["workers"])))
    seconds = time.monotonic() - started
    cpu = os.times()
    report = {
        "connects": total - len(errors),
        "failed": len(errors),
        "first_error": repr(errors[0]) if errors else None,
        "seconds": seconds,
        "client_cpu_seconds": cpu.user + cpu.system - cpu_before.user - cpu_before.system,
    }
    print(json.dumps(report), flush=True)


# --------------------------------------------------------------------------- driver


def _child(role: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
    return h.spawn_role("benchmarks.gateway_connections", role, config)


def _read_line(proc: subprocess.Popen[bytes], timeout: float) -> str:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if not line:
        raise h.BenchmarkError(f"no report from a load process (exit code {proc.poll()})")
    return line


def _process_rss(pid: int) -> int:
    """VmRSS of ``pid`` alone: the broker's own process, where the gateway's connections live
    (``iotchat up``'s children, dynalite and Lambda workers, grow with the presence events
    the connects cause, not with the connections held)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def idle_once(broker: h.BrokerProcess, count: int, concurrency: int = 100) -> dict[str, Any]:
    """RSS of ``broker`` (the tree, and its own process) before and with ``count`` idle
    connections, then with ``count`` more: the second batch's growth is the per-connection
    cost (the first one also fills whatever the process had freed since it started)."""
    rss_before = broker.rss_bytes()
    process = [_process_rss(broker.proc.pid)]
    reports = []
    with h.processes() as procs:
        for _ in range(2):
            client = _child(
                "idle",
                {
                    "port": broker.port,
                    "username": broker.username,
                    "password": broker.password,
                    "count": count,
                    "concurrency": concurrency,
                    "keep_alive": 600,
                    "client_prefix": f"bench-idle-{uuid.uuid4().hex[:8]}",
                },
            )
            procs.append(client)
            report = json.loads(_read_line(client, 60 + count / 50))
            reports.append(report)
            broker.check_alive()
            process.append(_process_rss(broker.proc.pid))
            if report["failed"]:
                raise h.BenchmarkError(
                    f"{report['failed']} of {count} connections to {broker.name} failed: "
                    f"{report['first_error']}"
                )
        rss_with = broker.rss_bytes()
        for client in procs:
            assert client.stdin is not None
            client.stdin.close()  # the client closes its sockets and exits
            client.wait(60)
    return {
        "rss_before": rss_before,
        "rss_with": rss_with,
        "process_before": process[0],
        "process_first": process[1],
        "process_with": process[2],
        "connect_seconds": reports[0]["seconds"],
    }


def wss_once(gw: h.BrokerProcess, count: int, workers: int) -> dict[str, Any]:
    with h.processes() as procs:
        client = _child(
            "wss",
            {
                "port": gw.extra["wss_port"],
                "ca_file": gw.extra["ca_file"],
                "region": gw.extra["region"],
                "access_key": h.ADMIN_USER,
                "secret_key": h.ADMIN_PASSWORD,
                "count": count,
                "workers": workers,
                "client_prefix": f"bench-wss-{uuid.uuid4().hex[:8]}",
            },
        )
        procs.append(client)
        return timed_wss_run(gw, client, count)


def timed_wss_run(gw: h.BrokerProcess, client: subprocess.Popen[bytes], count: int) -> dict:
    """Start a WSS load process that said ``ready``, read its report, add the gateway's CPU."""
    if _read_line(client, 60) != "ready":
        raise h.BenchmarkError("the WSS client did not start")
    cpu_before = gw.cpu_seconds()
    assert client.stdin is not None
    client.stdin.write(b"go\n")
    client.stdin.flush()
    report = json.loads(_read_line(client, 120 + count / 10))
    cpu_after = gw.cpu_seconds()
    client.wait(30)
    gw.check_alive()
    if report["failed"]:
        raise h.BenchmarkError(
            f"{report['failed']} of {count} WSS connects failed: {report['first_error']}"
        )
    return {**report, "gateway_cpu_seconds": cpu_after - cpu_before}


def measure(*, idle_connections: int, wss_connects: int, wss_workers: int = 8) -> list[dict]:
    h.require_mosquitto()
    # Both brokers are our children and inherit this limit; the load processes raise their own.
    h.raise_nofile(2 * idle_connections + 1024)
    load = round(os.getloadavg()[0], 2)
    lines: list[dict[str, Any]] = []
    with h.temp_dir("connections") as workdir:
        results = {}
        with h.mosquitto(workdir) as mq:
            results["mosquitto"] = idle_once(mq, idle_connections)
        with h.gateway(workdir) as gw:
            results["iotchat"] = idle_once(gw, idle_connections)
            wss = wss_once(gw, wss_connects, wss_workers)
    ours, theirs = results["iotchat"], results["mosquitto"]
    idle_params = {
        "connections": 2 * idle_connections,
        "transport": "tcp",
        "mqtt": "3.1.1",
        "loadavg_1m": load,
    }

    def per_conn_kib(r: dict[str, Any]) -> float:
        return (r["process_with"] - r["process_first"]) / idle_connections / 1024

    def tree_per_conn_kib(r: dict[str, Any]) -> float:
        return (r["rss_with"] - r["rss_before"]) / (2 * idle_connections) / 1024

    rss, base_rss = ours["rss_with"] / MIB, theirs["rss_with"] / MIB
    lines.append(
        {
            "name": NAME,
            "metric": "rss_mib",
            "unit": "MiB",
            **idle_params,
            "value": round(rss, 1),
            "baseline": round(base_rss, 1),
            "baseline_name": "mosquitto",
            "ratio": h.ratio(rss, base_rss),
            "idle_rss_mib": round(ours["rss_before"] / MIB, 1),
            "baseline_idle_rss_mib": round(theirs["rss_before"] / MIB, 1),
            "connect_seconds": round(ours["connect_seconds"], 2),
            "baseline_connect_seconds": round(theirs["connect_seconds"], 2),
            "target": "<= 1024 MiB at 10,000 connections",
        }
    )
    kib, base_kib = per_conn_kib(ours), per_conn_kib(theirs)
    lines.append(
        {
            "name": NAME,
            "metric": "rss_kib_per_connection",
            "unit": "KiB",
            **idle_params,
            "value": round(kib, 2),
            "baseline": round(base_kib, 2),
            "baseline_name": "mosquitto",
            "ratio": h.ratio(kib, base_kib),
            "measured_on": "the broker's own process, the second batch of connections",
            "with_children_kib": round(tree_per_conn_kib(ours), 2),
        }
    )
    rate = wss["connects"] / wss["seconds"]
    lines.append(
        {
            "name": NAME,
            "metric": "wss_sigv4_connects_per_s",
            "unit": "connects/s",
            "connects": wss["connects"],
            "workers": wss_workers,
            "transport": "wss+sigv4",
            "loadavg_1m": load,
            "value": round(rate, 1),
            "baseline": None,
            "baseline_name": None,
            "baseline_note": "mosquitto cannot verify SigV4-presigned WebSocket URLs",
            "ratio": None,
            "gateway_cpu_ms_per_connect": round(
                wss["gateway_cpu_seconds"] * 1000 / max(wss["connects"], 1), 3
            ),
            "client_cpu_ms_per_connect": round(
                wss["client_cpu_seconds"] * 1000 / max(wss["connects"], 1), 3
            ),
            "target": ">= 200 connects/s",
        }
    )
    return lines


def run(quick: bool = False) -> list[dict[str, Any]]:
    if quick:
        return measure(idle_connections=1_000, wss_connects=300)  # 2,000 in two batches
    return measure(idle_connections=5_000, wss_connects=2_000)  # 10,000 in two batches


if __name__ == "__main__":
    h.run_role({"idle": idle_main, "wss": wss_main})
