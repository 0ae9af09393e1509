"""``iotchat up`` as a child process for the fault scenarios: start, clean stop, SIGKILL,
health, and the processes it leaves (dynalite, kinesalite)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks._harness import wait_until
from tests.support.up_command import up_arguments

REPO_ROOT = Path(__file__).resolve().parents[2]

Info = dict[str, Any]


# ---------------------------------------------------------------------- the stack process


def _iotchat() -> list[str]:
    script = Path(sys.executable).with_name("iotchat")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from cli.main import app; app()"]


def _proc_cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes_matching(text: str) -> list[int]:
    """Pids whose command line contains ``text`` (Linux /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and text in _proc_cmdline(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class StackProcess:
    """``iotchat up`` as a child process on ``state_dir``."""

    state_dir: Path
    manifest: Path | None = None
    limits: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    info: Info = field(default_factory=dict)
    # Its own process group, as a terminal's foreground job or a systemd unit has: a group
    # signal (Ctrl-C, ``kill -- -PGID``) then reaches the stack and whatever shares its group.
    own_group: bool = False

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def ports(self) -> dict[str, int]:
        """The ports of the running stack, to start the next one on the same ones."""
        iot = self.info["iot"]
        return {
            "mqtt": iot["mqttPort"],
            "mqtts": iot["mqttsPort"],
            "wss": iot["wssPort"],
            "ws": iot["wsPort"],
            "api": urlsplit(self.info["api"]["endpoint"]).port or 0,
            "web": urlsplit(self.info["web"]["url"]).port or 0,
        }

    def start(self, ports: dict[str, int] | None = None, timeout: float = 60.0) -> Info:
        args = [*_iotchat(), *up_arguments(self.state_dir, ports, self.limits)]
        if self.manifest is not None:
            args += ["--manifest", str(self.manifest)]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # A killed stack leaves its file behind: it must not pass for the new one being ready.
        self.stack_file.unlink(missing_ok=True)
        log = (self.state_dir / "up.log").open("ab")
        self.proc = subprocess.Popen(
            args,
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=self.own_group,
        )
        log.close()

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"iotchat up exited ({self.proc.returncode}); see up.log")
            return self.stack_file.exists()

        wait_until(ready, timeout, "stack ready")
        self.info = json.loads(self.stack_file.read_text())
        return self.info

    def stop(self, timeout: float = 60.0) -> float:
        """A clean stop (SIGTERM, as Ctrl-C); returns the seconds it took."""
        assert self.proc is not None
        began = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self._wait_children_gone()
        return time.monotonic() - began

    def stop_group(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> None:
        """Signal the stack's whole process group (``kill -- -PGID``), as Ctrl-C at a
        terminal, systemd and container runtimes do, and wait for it to end."""
        assert self.proc is not None and self.own_group
        os.killpg(self.proc.pid, sig)
        self.proc.wait(timeout)
        self._wait_children_gone()

    def kill(self) -> None:
        """SIGKILL: no clean-up code runs in the stack."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._wait_children_gone()

    def _wait_children_gone(self, timeout: float = 15.0) -> None:
        """dynalite and kinesalite end with the stack (parent-death signal); the data
        directory may only be reopened once they have."""
        marker = str(self.state_dir.resolve())
        try:
            wait_until(lambda: not processes_matching(marker), timeout, "stack children exit")
        except TimeoutError:
            for pid in processes_matching(marker):
                with suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()

    def health(self) -> dict[str, Any]:
        import urllib.error
        import urllib.request

        url = self.info["api"]["endpoint"] + "/_iotchat/health"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return json.loads(exc.read())

    def dynalite_pid(self) -> int:
        path = str((self.state_dir / "dynamodb").resolve())
        (pid,) = [p for p in processes_matching(path) if "dynalite" in _proc_cmdline(p)]
        return pid


@contextmanager
def running_stack(state_dir: Path, **kwargs: Any) -> Iterator[StackProcess]:
    stack = StackProcess(state_dir, **kwargs)
    try:
        stack.start()
        yield stack
    finally:
        stack.close()
