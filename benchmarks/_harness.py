"""Shared machinery for the gateway benchmarks.

Every broker under test runs as its own process on a free loopback port, so its CPU time and
memory can be read from ``/proc`` without the load generators muddying them. Everything a
benchmark starts is registered here and torn down in ``finally`` blocks (process groups are
killed), also on exceptions and Ctrl-C.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.support import raw_mqtt, waiting
from tests.support.up_command import up_arguments

HOST = "127.0.0.1"
ADMIN_USER = "test"
ADMIN_PASSWORD = "test"  # the local stack's documented admin credentials
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchmarkError(RuntimeError):
    """A benchmark could not run (a broker did not start, a client failed)."""


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now (mosquitto 2.0 cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (``pct`` in 0..100) of unsorted ``values``."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * pct / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


LATENCY_PERCENTILES = (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("max", 100.0))


def latency_lines(
    name: str,
    params: dict[str, Any],
    measured_ns: Sequence[float],
    baseline_ns: Sequence[float],
    baseline_name: str,
    extra: Any = None,
) -> list[dict[str, Any]]:
    """One result line per percentile of a latency measured against a same-run baseline
    (both in ns, reported in ms); ``extra(metric)`` adds fields to a line."""
    lines = []
    for metric, pct in LATENCY_PERCENTILES:
        value = percentile(measured_ns, pct) / 1e6
        baseline = percentile(baseline_ns, pct) / 1e6
        lines.append(
            {
                "name": name,
                "metric": metric,
                "unit": "ms",
                **params,
                "value": round(value, 3),
                "baseline": round(baseline, 3),
                "baseline_name": baseline_name,
                "ratio": ratio(value, baseline),
                **(extra(metric) if extra else {}),
            }
        )
    return lines


def ratio(value: float | None, baseline: float | None) -> float | None:
    """This project / baseline, or ``None`` when there is nothing to compare with."""
    if value is None or baseline is None or baseline == 0:
        return None
    return round(value / baseline, 3)


def raise_nofile(wanted: int) -> int:
    """Raise this process's open-file limit (children inherit it); returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return soft


def require_mosquitto() -> None:
    missing = [t for t in ("mosquitto", "mosquitto_pub", "mosquitto_sub") if find_tool(t) is None]
    if missing:
        raise BenchmarkError(
            f"{', '.join(missing)} not found: run scripts/setup (installs mosquitto and "
            "mosquitto-clients)"
        )


def find_tool(name: str) -> str | None:
    """Find a tool on PATH, also in the sbin folders Debian puts mosquitto in."""
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return shutil.which(name, path=path)


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": model, "python": platform.python_version()}


# --------------------------------------------------------------------------- /proc readings


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                text = Path(f"/proc/{pid}/task/{task}/children").read_text()
                found.extend(int(c) for c in text.split())
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(_children(current))
    return tree


@dataclass(frozen=True)
class Counters:
    """CPU time of a process tree, split into user and kernel; subtract two for a run's share."""

    user_seconds: float = 0.0
    system_seconds: float = 0.0

    @property
    def cpu_seconds(self) -> float:
        return self.user_seconds + self.system_seconds

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.user_seconds - other.user_seconds, self.system_seconds - other.system_seconds
        )


def counters(pid: int) -> Counters:
    """utime and stime from /proc/<pid>/stat, summed over ``pid`` and its live descendants.

    (System-call counts from /proc/<pid>/io are not used: they miss send()/recv(), which is
    what Python's sockets use, so they would not compare a Python broker with a C one.)
    """
    utime = stime = 0
    for member in process_tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        fields_ = stat.rsplit(")", 1)[1].split()
        utime += int(fields_[11])  # field 14 of stat(5)
        stime += int(fields_[12])  # field 15
    return Counters(utime / CLK_TCK, stime / CLK_TCK)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its live descendants (clock-tick resolution)."""
    return counters(pid).cpu_seconds


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` and its live descendants."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
    return total


# --------------------------------------------------------------------------- processes


def spawn_role(module: str, role: str, config: dict[str, Any]) -> subprocess.Popen[bytes]:
    """A load process: ``python -m <module> <role> <config JSON>``, talking over pipes."""
    return spawn(
        [sys.executable, "-m", module, role, json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=None,
    )


def run_role(roles: dict[str, Callable[[dict[str, Any]], Any]]) -> None:
    """The entry point of a load process started by :func:`spawn_role`: run the role named by
    ``argv[1]`` with the JSON config in ``argv[2]`` (a coroutine role on its own event loop)."""
    import asyncio

    role, raw = sys.argv[1], sys.argv[2]
    outcome = roles[role](json.loads(raw))
    if asyncio.iscoroutine(outcome):
        asyncio.run(outcome)


def expect_line(proc: subprocess.Popen[bytes], word: str, timeout: float) -> None:
    """Wait for a load process to say ``word`` on its stdout (its readiness handshake)."""
    import select

    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline().decode().strip() if ready else ""
    if line != word:
        raise BenchmarkError(f"expected {word!r} from a load process, got {line!r}")


def spawn(
    args: Sequence[str],
    *,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] | None = subprocess.DEVNULL,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, so :func:`stop` can take all of it down."""
    return subprocess.Popen(
        list(args),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )


def stop(proc: subprocess.Popen[Any], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Signal the process group, wait, then SIGKILL the group if it is still there.

    A process that has already exited (and been reaped) is left alone: its id may belong to
    someone else's process by now.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout)
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[Any]]]:
    """A list to put started processes in; every one is stopped on the way out."""
    started: list[subprocess.Popen[Any]] = []
    try:
        yield started
    finally:
        for proc in reversed(started):
            stop(proc, timeout=3.0)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=f"iotchat-{prefix}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class WaitTimeout(BenchmarkError, TimeoutError):
    """A :func:`wait_until` deadline passed."""


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until truthy; raise :class:`WaitTimeout` naming ``what`` at the
    deadline."""
    return waiting.wait_until(predicate, timeout, what, interval, error=WaitTimeout)


def paho_client(client_id: str, username: str | None, password: str | None) -> Any:
    """A paho-mqtt MQTT 3.1.1 clean-session client, with username/password when given."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
        clean_session=True,
    )
    if username is not None:
        client.username_pw_set(username, password)
    return client


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------- brokers


@dataclass
class BrokerProcess:
    """A running broker: where it listens and how to log in (``None`` = anonymous)."""

    name: str  # "iotchat" or "mosquitto"
    proc: subprocess.Popen[bytes]
    port: int
    username: str | None = None
    password: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def counters(self) -> Counters:
        return counters(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes(self.pid)

    def credentials_args(self) -> list[str]:
        """mosquitto_pub/mosquitto_sub arguments for this broker's login."""
        if self.username is None:
            return []
        return ["-u", self.username, "-P", self.password or ""]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchmarkError(f"{self.name} exited with code {self.proc.returncode}")


def gateway_command(
    state_dir: Path, limits: Sequence[str] = (), extra: Sequence[str] = ()
) -> list[str]:
    """``iotchat up`` for a benchmark: ephemeral ports, no publish rate limit unless
    ``limits`` sets one."""
    limits = ["publishes_per_second=1000000", *limits]
    return [sys.executable, "-m", "cli.main", *up_arguments(state_dir, limits=limits), *extra]


@contextlib.contextmanager
def gateway(
    workdir: Path, limits: Sequence[str] = (), extra: Sequence[str] = ()
) -> Iterator[BrokerProcess]:
    """``iotchat up`` in its own process; ready once it has written stack.json."""
    state_dir = workdir / "gateway-state"
    log_path = workdir / "gateway.log"
    with open(log_path, "wb") as log:
        proc = spawn(gateway_command(state_dir, limits, extra), stdout=log, stderr=log)
    stack_file = state_dir / "stack.json"
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise BenchmarkError(f"iotchat up exited with {proc.returncode}:\n{tail}")
            return stack_file.exists()

        wait_until(ready, 60, "iotchat up to write stack.json")
        stack = json.loads(stack_file.read_text())
        iot = stack["iot"]
        yield BrokerProcess(
            "iotchat",
            proc,
            int(iot["mqttPort"]),
            ADMIN_USER,
            ADMIN_PASSWORD,
            extra={
                "wss_port": int(iot["wssPort"]),
                "ca_file": iot["caFile"],
                "region": stack.get("region", "us-east-1"),
                "log": log_path,
            },
        )
    finally:
        stop(proc, signal.SIGINT, timeout=15.0)


MOSQUITTO_CONF = """\
listener {port} 127.0.0.1
allow_anonymous true
max_inflight_messages 100
max_queued_messages 1000
max_connections -1
persistence false
log_dest stderr
log_type error
log_type warning
connection_messages false
"""


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[BrokerProcess]:
    """A Debian mosquitto with a minimal config, the baseline every figure is compared with."""
    require_mosquitto()
    binary = find_tool("mosquitto")
    assert binary is not None
    conf = workdir / "mosquitto.conf"
    log_path = workdir / "mosquitto.log"
    for _attempt in range(5):
        port = free_port()
        conf.write_text(MOSQUITTO_CONF.format(port=port))
        with open(log_path, "wb") as log:
            proc = spawn([binary, "-c", str(conf)], stdout=log, stderr=log)
        try:

            def ready(proc: subprocess.Popen[bytes] = proc, port: int = port) -> bool:
                return proc.poll() is not None or port_open(port)

            wait_until(ready, 15, "mosquitto to listen")
            if proc.poll() is None:
                break
        except BaseException:
            stop(proc)
            raise
        stop(proc)  # lost the port to someone else between free_port() and bind: retry
    else:
        raise BenchmarkError(f"mosquitto did not start: {log_path.read_text(errors='replace')}")
    try:
        yield BrokerProcess("mosquitto", proc, port, extra={"log": log_path})
    finally:
        stop(proc, signal.SIGTERM)


# --------------------------------------------------------------------------- raw MQTT


async def wss_mqtt_session(url: str, context: Any, client_id: str) -> None:
    """One full SigV4 WebSocket connect: TLS, upgrade, MQTT CONNECT/CONNACK, DISCONNECT."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.typing import Subprotocol

    async with connect(
        url,
        ssl=context,
        subprotocols=[Subprotocol("mqtt")],
        compression=None,
        proxy=None,
        ping_interval=None,
        open_timeout=30,
        close_timeout=10,
        user_agent_header=None,
    ) as ws:
        await ws.send(raw_mqtt.connect_packet(client_id, raw_mqtt.V311, keep_alive=60))
        connack = await asyncio.wait_for(ws.recv(), 30)
        if not isinstance(connack, bytes) or not raw_mqtt.connack_ok(connack):
            raise RuntimeError(f"CONNACK {connack!r}")
        await ws.send(raw_mqtt.DISCONNECT)


# --------------------------------------------------------------------------- mosquitto_sub output


def sub_arrivals(path: Path, kind: str = "message", key: str = "id") -> dict[str, int]:
    """Each ``key``'s first arrival (wall-clock ns, as printed) among the ``kind`` payloads of a
    ``mosquitto_sub -F '%U %p'`` output file; lines that are not such JSON are skipped."""
    first: dict[str, int] = {}
    for raw in path.read_bytes().splitlines():
        stamp, _, payload = raw.partition(b" ")
        try:
            body = json.loads(payload)
            seconds, _, nanos = stamp.decode().partition(".")
            at = int(seconds) * 1_000_000_000 + int(nanos.ljust(9, "0")[:9])
        except ValueError:
            continue
        if isinstance(body, dict) and body.get("type") == kind and key in body:
            first.setdefault(str(body[key]), at)
    return first
