"""What a device reports about itself: CPU temperature, load, uptime, memory.

Read from ``/proc`` and ``/sys/class/thermal`` (Linux, as on a Raspberry Pi); a reading that is
not available on this machine is left out rather than guessed. The roots are parameters so
tests can point them at a fake tree.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

PROC = Path("/proc")
THERMAL = Path("/sys/class/thermal")
# Zone types that measure the CPU (Raspberry Pi: cpu-thermal; x86: x86_pkg_temp).
CPU_ZONE_HINTS = ("cpu", "x86_pkg", "soc", "core")


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def cpu_temperature(thermal: Path = THERMAL) -> float | None:
    """Degrees Celsius from the CPU's thermal zone (else the first readable one), or None."""
    readings: list[tuple[bool, float]] = []
    try:
        zones = sorted(thermal.glob("thermal_zone*"))
    except OSError:
        return None
    for zone in zones:
        raw = _read(zone / "temp")
        if raw is None:
            continue
        try:
            celsius = int(raw.strip()) / 1000.0
        except ValueError:
            continue
        kind = (_read(zone / "type") or "").strip().lower()
        readings.append((any(hint in kind for hint in CPU_ZONE_HINTS), celsius))
    if not readings:
        return None
    cpu = [value for is_cpu, value in readings if is_cpu]
    return round((cpu or [readings[0][1]])[0], 1)


def load_average(proc: Path = PROC) -> tuple[float, float, float] | None:
    raw = _read(proc / "loadavg")
    if raw is not None:
        with contextlib.suppress(ValueError, IndexError):
            first, five, fifteen = (float(x) for x in raw.split()[:3])
            return first, five, fifteen
    if proc == PROC:
        with contextlib.suppress(OSError, AttributeError):
            return os.getloadavg()
    return None


def uptime_seconds(proc: Path = PROC) -> int | None:
    raw = _read(proc / "uptime")
    if raw is None:
        return None
    try:
        return int(float(raw.split()[0]))
    except (ValueError, IndexError):
        return None


def memory_mib(proc: Path = PROC) -> tuple[int, int] | None:
    """(total, available) in MiB from ``/proc/meminfo``."""
    raw = _read(proc / "meminfo")
    if raw is None:
        return None
    fields: dict[str, int] = {}
    for line in raw.splitlines():
        name, _, rest = line.partition(":")
        with contextlib.suppress(ValueError, IndexError):
            fields[name.strip()] = int(rest.split()[0])  # kB
    if "MemTotal" not in fields:
        return None
    available = fields.get("MemAvailable", fields.get("MemFree", 0))
    return fields["MemTotal"] // 1024, available // 1024


def read_metrics(proc: Path = PROC, thermal: Path = THERMAL) -> dict[str, Any]:
    """One telemetry reading, flat JSON numbers so the room can show them as they are."""
    data: dict[str, Any] = {}
    temperature = cpu_temperature(thermal)
    if temperature is not None:
        data["cpuTemp"] = temperature
    load = load_average(proc)
    if load is not None:
        data["load1"], data["load5"], data["load15"] = (round(x, 2) for x in load)
    uptime = uptime_seconds(proc)
    if uptime is not None:
        data["uptime"] = uptime
    memory = memory_mib(proc)
    if memory is not None:
        data["memTotalMiB"], data["memAvailableMiB"] = memory
    return data


def duration(seconds: int) -> str:
    """``3d 4h 5m`` style, for people."""
    minutes, _ = divmod(max(0, seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def summary(data: dict[str, Any]) -> str:
    """A reading as one line of chat text."""
    parts: list[str] = []
    if "uptime" in data:
        parts.append(f"up {duration(int(data['uptime']))}")
    if "load1" in data:
        parts.append(f"load {data['load1']:.2f} {data['load5']:.2f} {data['load15']:.2f}")
    if "memTotalMiB" in data:
        used = data["memTotalMiB"] - data["memAvailableMiB"]
        parts.append(f"memory {used}/{data['memTotalMiB']} MiB used")
    if "cpuTemp" in data:
        parts.append(f"CPU {data['cpuTemp']:.1f} °C")
    return ", ".join(parts) or "no readings available"
