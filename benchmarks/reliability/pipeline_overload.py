"""Pipeline overload: room messages offered at several times the chat's capacity, and what
the stack does with them (docs/reliability.md, "Pipeline overload").

On ``iotchat up`` (the admin's per-connection publish rate lifted), a raw MQTT 5 publisher
writes valid room messages to ``chat/out`` at ``rate`` per second for ``seconds``, on its
schedule, as fast as TCP lets it (a socket the gateway stops reading blocks it: that is the
backpressure). Ten ``mosquitto_sub`` subscribers read the room, one more reads the publisher's
inbox (where a failed store would be reported). A probe publisher sends a few messages a second
throughout: before the overload (the unloaded latency), during and after it.

Every message the publisher wrote is accounted for: accepted (PUBACK 0x00), refused (0x97:
the sender was told) or never answered. Accepted ones must reach every subscriber and the
table (or an error on the inbox). Reported too: the stack's RSS growth, the probes' p99
publish-to-delivered latency unloaded and in 1-s windows after the overload, and how long it
took to get back under ``max(2 x unloaded p99, unloaded p99 + 50 ms)`` for three windows in a
row.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from contextlib import suppress
from pathlib import Path
from typing import Any

from benchmarks import _harness as h
from benchmarks.reliability.stack_process import Info, StackProcess, rss_bytes
from benchmarks.reliability.store import stored_ids
from tests.support.messages_table import room_conv
from tests.support.raw_mqtt import PUBACK, Frames, connect_packet, publish_packet

SUBSCRIBERS = 10
TEXT_BYTES = 100
PROBE_RATE = 20.0
SEND_BUFFER = 64 * 1024  # the publisher's socket buffer: a held publisher blocks soon
RECOVERY_WINDOW_SECONDS = 1.0
RECOVERY_MARGIN_MS = 50.0  # a loaded shared machine's own jitter
RECOVERY_SUSTAINED = 3  # windows in a row under the bound: "back", not a lucky second


def _room_message(message_id: str, room: str) -> bytes:
    body = {"v": 1, "type": "message", "id": message_id, "room": room, "body": "x" * TEXT_BYTES}
    return json.dumps(body, separators=(",", ":")).encode()


class RawPublisher:
    """An MQTT 5 publisher on a raw socket, as the admin: writes pre-encoded PUBLISH packets
    on a schedule and records each one's PUBACK reason code (packet ids are not reused)."""

    def __init__(self, info: Info, client_id: str) -> None:
        self.client_id = client_id
        self.sock = socket.create_connection(("127.0.0.1", int(info["iot"]["mqttPort"])))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        admin = info["admin"]
        self.sock.sendall(
            connect_packet(
                client_id,
                username=admin["accessKeyId"],
                password=admin["secretAccessKey"],
                keep_alive=1200,  # silent after the overload while the counts are read
            )
        )
        self.frames = Frames()
        self.sent: dict[int, tuple[str, int]] = {}  # packet id -> (message id, wall ns)
        self.codes: dict[int, int] = {}  # packet id -> PUBACK reason code
        self.closed = False
        self.next_pid = 1
        self._connack = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._connack.wait(10):
            raise h.BenchmarkError(f"{client_id}: no CONNACK")

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.closed = True
                return
            self.frames.feed(data)
            while (frame := self.frames.next()) is not None:
                first, body = frame
                if first >> 4 == PUBACK:
                    pid = int.from_bytes(body[:2], "big")
                    self.codes[pid] = body[2] if len(body) > 2 else 0
                elif first >> 4 == 2:
                    self._connack.set()

    def publish(self, message_id: str, payload: bytes) -> None:
        pid = self.next_pid
        self.next_pid += 1
        packet = publish_packet(pid, "chat/out", payload)
        self.sent[pid] = (message_id, time.time_ns())
        self.sock.sendall(packet)  # blocks while the gateway does not read: backpressure

    def unanswered(self) -> int:
        return len(self.sent) - len(self.codes)

    def ids(self, code: int | None) -> set[str]:
        """Message ids answered with ``code`` (None: not answered at all)."""
        if code is None:
            return {m for pid, (m, _) in self.sent.items() if pid not in self.codes}
        return {m for pid, (m, _) in self.sent.items() if self.codes.get(pid) == code}

    def close(self) -> None:
        self.sock.close()


def _paced(
    publisher: RawPublisher, room: str, prefix: str, rate: float, until: threading.Event
) -> None:
    """Publish on schedule until ``until`` is set; what is due while blocked goes out late."""
    began = time.monotonic()
    n = 0
    while not until.is_set() and not publisher.closed:
        due = int((time.monotonic() - began) * rate) + 1
        while n < due and not until.is_set():
            message_id = f"{prefix}-{n}"
            try:
                publisher.publish(message_id, _room_message(message_id, room))
            except OSError:
                return
            n += 1
        until.wait(min(0.005, 1 / rate))


def _p99(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def pipeline_overload(
    workdir: Path, *, rate: int, seconds: float, before: float = 8.0, after: float = 20.0
) -> dict[str, Any]:
    """Offer ``rate`` room messages/s for ``seconds``; see the module docstring."""
    h.require_mosquitto()
    sub_tool = h.find_tool("mosquitto_sub")
    assert sub_tool is not None
    stack = StackProcess(workdir / "pipeline", limits=["publishes_per_second=1000000"])
    info = stack.start()
    run = uuid.uuid4().hex[:8]
    room = f"ovl-{run}"
    admin = info["admin"]
    login = ["-h", "127.0.0.1", "-p", str(info["iot"]["mqttPort"]), "-V", "mqttv5"]
    login += ["-u", admin["accessKeyId"], "-P", admin["secretAccessKey"]]
    outputs = [workdir / f"sub-{run}-{k}.out" for k in range(SUBSCRIBERS)]
    inbox_out = workdir / f"inbox-{run}.out"
    samples: list[int] = []
    stop_sampling = threading.Event()
    stop_probe = threading.Event()
    stop_load = threading.Event()
    try:
        with h.processes() as procs:
            load = RawPublisher(info, f"ovl-load-{run}")
            probe = RawPublisher(info, f"ovl-probe-{run}")
            for k, out_path in enumerate(outputs):
                with open(out_path, "wb") as out:
                    args = [sub_tool, *login, "-i", f"ovl-sub-{run}-{k}", "-q", "1"]
                    args += ["-t", f"chat/pub/{room}", "-F", "%U %p"]
                    procs.append(h.spawn(args, stdout=out))
            with open(inbox_out, "wb") as out:
                args = [sub_tool, *login, "-i", f"ovl-inbox-{run}", "-q", "1"]
                args += ["-t", f"chat/in/{load.client_id}", "-F", "%U %p"]
                procs.append(h.spawn(args, stdout=out))
            # Subscribed once a first probe message reaches every subscriber.
            probing = threading.Thread(
                target=_paced, args=(probe, room, "probe", PROBE_RATE, stop_probe), daemon=True
            )
            probing.start()
            h.wait_until(
                lambda: all(p.exists() and p.stat().st_size > 0 for p in outputs),
                60,
                "subscribers receiving",
            )
            # Probes sent before every subscriber had subscribed are not theirs to receive.
            all_subscribed = time.time_ns()

            def sample() -> None:
                while not stop_sampling.is_set():
                    samples.append(rss_bytes(stack.pid))
                    stop_sampling.wait(0.25)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            rss_start = rss_bytes(stack.pid)
            unloaded_from = time.time_ns()
            h.wait_until(lambda: time.time_ns() - unloaded_from >= before * 1e9, before + 5, "")
            overload_from = time.time_ns()
            loading = threading.Thread(
                target=_paced, args=(load, room, "load", float(rate), stop_load), daemon=True
            )
            loading.start()
            h.wait_until(
                lambda: time.time_ns() - overload_from >= seconds * 1e9, seconds + 5, "overload"
            )
            stop_load.set()
            loading.join(60)
            overload_to = time.time_ns()
            h.wait_until(lambda: time.time_ns() - overload_to >= after * 1e9, after + 5, "after")
            stop_probe.set()
            probing.join(30)
            # Every publish answered (accepted or refused), then delivered and stored.
            h.wait_until(lambda: load.unanswered() == 0 or load.closed, 120, "every PUBACK")
            accepted = load.ids(0) | probe.ids(0)
            refused = load.ids(0x97) | probe.ids(0x97)
            others = {m for p in (load, probe) for pid, (m, _) in p.sent.items()}
            others -= accepted | refused | load.ids(None) | probe.ids(None)
            state: dict[str, Any] = {}

            early = {m for m, at in probe.sent.values() if at < all_subscribed}
            expected = accepted - early

            def delivered_everywhere() -> bool:
                arrivals = [h.sub_arrivals(p) for p in outputs]
                state["arrivals"] = arrivals
                return all(expected <= set(a) for a in arrivals)

            # A shortfall is reported in the counts, not raised: the test asserts on them.
            with suppress(h.WaitTimeout):
                h.wait_until(delivered_everywhere, 120, "accepted messages delivered")
            conv = room_conv(room)
            with suppress(h.WaitTimeout):
                h.wait_until(
                    lambda: (
                        accepted
                        <= set(stored_ids(info, conv))
                        | set(h.sub_arrivals(inbox_out, "error", "ref"))
                    ),
                    120,
                    "accepted messages stored",
                    1.0,
                )
            stop_sampling.set()
            sampler.join(5)
            stored = set(stored_ids(info, conv))
            errored = set(h.sub_arrivals(inbox_out, "error", "ref"))
            arrivals = state.get("arrivals") or [h.sub_arrivals(p) for p in outputs]
            health = stack.health()
            probe_ids = {pid: sent for pid, sent in probe.sent.items()}
            first = arrivals[0]
            latency: list[tuple[int, float]] = [
                (at, (first[m] - at) / 1e6) for m, at in probe_ids.values() if m in first
            ]
            unloaded = [ms for at, ms in latency if unloaded_from <= at < overload_from]
            unloaded_p99 = _p99(unloaded) or 0.0
            bound = max(2 * unloaded_p99, unloaded_p99 + RECOVERY_MARGIN_MS)
            windows = []
            window_ns = int(RECOVERY_WINDOW_SECONDS * 1e9)
            start = overload_to
            while start < overload_to + int(after * 1e9):
                values = [ms for at, ms in latency if start <= at < start + window_ns]
                windows.append(_p99(values))
                start += window_ns
            recovered_after = None
            for k in range(len(windows) - RECOVERY_SUSTAINED + 1):
                run_of = windows[k : k + RECOVERY_SUSTAINED]
                if all(w is not None and w <= bound for w in run_of):
                    recovered_after = k * RECOVERY_WINDOW_SECONDS
                    break
            disconnected = load.closed or probe.closed
            load.close()
            probe.close()
    finally:
        stop_load.set()
        stop_probe.set()
        stop_sampling.set()
        stack.close()
        for path in (*outputs, inbox_out):
            path.unlink(missing_ok=True)
    sent = len(load.sent) + len(probe.sent)
    return {
        "scenario": "pipeline-overload",
        "offeredPerSecond": rate,
        "overloadSeconds": seconds,
        "scheduled": int(rate * seconds),
        "sent": sent,
        "sentPerSecond": round(len(load.sent) / seconds, 1),
        "accepted": len(accepted),
        "refused0x97": len(refused),
        "otherCodes": len(others),
        "unanswered": load.unanswered() + probe.unanswered(),
        "publisherDisconnected": disconnected,
        "acceptedNotDeliveredToAll": len(expected - set.intersection(*(set(a) for a in arrivals))),
        "probesBeforeSubscribed": len(early),
        "acceptedNotStoredNorErrored": len(accepted - stored - errored),
        "errorsOnInbox": len(errored & accepted),
        "storedNotAccepted": len((stored - accepted) & {m for m, _ in load.sent.values()}),
        "rssStartMB": round(rss_start / 2**20, 1),
        "rssPeakMB": round(max(samples, default=rss_start) / 2**20, 1),
        "rssGrowthMB": round((max(samples, default=rss_start) - rss_start) / 2**20, 1),
        "unloadedP99Ms": round(unloaded_p99, 1),
        "recoveryBoundMs": round(bound, 1),
        "windowP99MsAfter": [None if w is None else round(w, 1) for w in windows],
        "recoveredAfterSeconds": recovered_after,
        "gatewayStats": health.get("metrics", {}),
        "healthStatus": health.get("status"),
    }


__all__ = ["pipeline_overload"]
