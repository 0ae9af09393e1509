"""``scripts/up`` on a fresh clone, as a newcomer runs it: it installs what running needs and
nothing the tests need, says how long each step took, prints where to go once the stack is
ready, and says "stopped" after Ctrl-C."""

from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

import pytest

from tests.support.up_command import ROOT, up_arguments
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TEST_ONLY_PACKAGES = {"moto", "playwright", "hypothesis", "cfn-lint", "pytest", "checkov"}


def test_scripts_up_on_a_fresh_clone_installs_only_what_running_needs(tmp_path: Path) -> None:
    clone = tmp_path / "iotchat"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=120)
    proc = subprocess.Popen(
        ["scripts/up", *up_arguments(tmp_path / "state")[1:]],
        cwd=clone,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: list[str] = []
    assert proc.stdout is not None
    stdout = proc.stdout
    reader = threading.Thread(target=lambda: lines.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(line.startswith("  Ctrl-C stops.") for line in lines), 480, 0.2)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        reader.join(10)
    assert proc.returncode == 0, "".join(lines)
    assert lines[-1] == "stopped\n"

    steps = [line for line in lines if line.startswith("setup: ")]
    assert [s.split("  ")[0] for s in steps] == [
        "setup: Python virtualenv .venv",
        "setup: Python packages",
        "setup: Node packages (dynalite, kinesalite)",
        "setup: web client's Node packages",
    ]
    assert all(s.rstrip().endswith(" s") for s in steps)
    banner = "".join(lines[lines.index(next(x for x in lines if "is ready" in x)) :])
    for expected in ("web app      http://127.0.0.1:", "iotchat chat", "iotchat listen"):
        assert expected in banner
    assert "export AWS_ENDPOINT_URL=http://127.0.0.1:" in banner

    installed = subprocess.run(
        [str(clone / ".venv/bin/python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    names = {line.split("==")[0] for line in installed.splitlines()}
    assert "boto3" in names and "aiohttp" in names
    assert not names & TEST_ONLY_PACKAGES
    assert not (clone / ".venv-tools").exists()
    assert not (clone / "client/web/node_modules/axe-core").exists()
    assert (clone / "client/web/node_modules/mqtt").is_dir()
