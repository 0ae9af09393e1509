"""Overload: consumers that never read their sockets (bounded queues) and a client
publishing far over the per-connection rate (throttling)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from benchmarks.reliability.room_client import RoomClient
from benchmarks.reliability.stack_process import rss_bytes, running_stack
from benchmarks.reliability.store import guest_identity
from tests.support.raw_mqtt import V311, publish_packet, tcp_connect, tcp_subscribe
from tests.support.wss_client import KEEPALIVE


def slow_consumer(workdir: Path, *, messages: int, payload_bytes: int) -> dict[str, Any]:
    """Two clients subscribe (QoS 1 and QoS 0) and never read their sockets while a publisher
    sends ``messages`` x ``payload_bytes`` to them; the stack process's RSS is sampled. With
    bounded queues (1,000 queued QoS 1 messages, 1 MiB written per client) the growth stays
    a small fraction of what was offered."""
    with running_stack(workdir / "slow", limits=["publishes_per_second=1000000"]) as stack:
        port = stack.info["iot"]["mqttPort"]
        slow1 = tcp_connect(port, "slow-qos1", keep_alive=KEEPALIVE, rcvbuf=4096)
        tcp_subscribe(slow1, "load/#", 1)
        slow0 = tcp_connect(port, "slow-qos0", keep_alive=KEEPALIVE, rcvbuf=4096)
        tcp_subscribe(slow0, "load/#", 0)
        publisher = tcp_connect(port, "fast-publisher", keep_alive=KEEPALIVE)
        publisher.settimeout(60)
        rss_start = rss_bytes(stack.pid)
        peak = rss_start
        payload = os.urandom(payload_bytes // 2).hex().encode()[:payload_bytes]
        pid = 1
        batch = 50
        offered = 0
        try:
            for start in range(0, messages, batch):
                chunk = []
                for _ in range(min(batch, messages - start)):
                    chunk.append(publish_packet(pid, "load/slow", payload, V311))
                    pid = pid % 65535 + 1
                publisher.sendall(b"".join(chunk))
                offered += len(chunk) * len(payload)
                # Read the publisher's PUBACKs so it never becomes a slow consumer itself.
                expected = len(chunk) * 4
                got = 0
                while got < expected:
                    got += len(publisher.recv(expected - got))
                peak = max(peak, rss_bytes(stack.pid))
            # Let the gateway settle, then take the last sample.
            alive = stack.health()["components"]["gateway"] == "ok"
            peak = max(peak, rss_bytes(stack.pid))
        finally:
            for sock in (slow1, slow0, publisher):
                sock.close()
        return {
            "scenario": "slow-consumer",
            "messages": messages,
            "payloadBytes": payload_bytes,
            "offeredBytesPerConsumer": offered,
            "rssStartBytes": rss_start,
            "rssPeakBytes": peak,
            "rssGrowthBytes": peak - rss_start,
            "growthShareOfOffered": round((peak - rss_start) / (2 * offered), 3),
            "gatewayHealthy": alive,
        }


def throttle(workdir: Path, *, burst: int) -> dict[str, Any]:
    """A Cognito chat client publishing ``burst`` room messages at once, far over 100/s:
    MQTT 5 gets PUBACK 0x97 (quota exceeded) for the excess, MQTT 3.1.1 is disconnected."""
    with running_stack(workdir / "throttle") as stack:
        info = stack.info
        room = f"thr-{uuid.uuid4().hex[:8]}"
        v5 = RoomClient(info, guest_identity(info), mqtt5=True)
        v3 = RoomClient(info, guest_identity(info))
        try:
            v5.connect()
            ids5 = [f"t5-{n}" for n in range(burst)]
            began = time.monotonic()
            for message_id in ids5:
                v5.say(room, message_id)
            v5.wait(lambda: len(v5.acked) + len(v5.refused) >= burst, "every PUBACK")
            burst_seconds = time.monotonic() - began
            v3.connect()
            for n in range(burst):
                v3.say(room, f"t3-{n}")
            v3.wait(lambda: v3.disconnects > 0, "the throttling disconnect")
            return {
                "scenario": "throttle",
                "burst": burst,
                "mqtt5Accepted": len(v5.acked),
                "mqtt5Refused": len(v5.refused),
                "mqtt5RefusedCodes": sorted({hex(c) for c in v5.refused.values()}),
                "mqtt5BurstSeconds": round(burst_seconds, 3),
                "mqtt311Accepted": len(v3.acked),
                "mqtt311Disconnected": v3.disconnects > 0,
            }
        finally:
            v5.close()
            v3.close()
