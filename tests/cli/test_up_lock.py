"""One stack per state dir: a second ``iotchat up`` is refused at once and changes nothing, a
port in use is named with its option, a dead stack's lock is taken over."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from client.chat_client import ChatClient
from client.events import Message
from client.identity import Identity, SessionFile
from client.stack_file import load_stack_file
from tests.support.up_command import ROOT, up_arguments, up_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


def iotchat_up(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", "up", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def snapshot(state: Path) -> dict[str, tuple[int, int]]:
    """Size and modification time of the running stack's files that a second stack would
    have overwritten or removed."""
    names = ["stack.json", "dynamodb.log", "kinesis.log", "up.lock"]
    return {n: (os.stat(state / n).st_size, os.stat(state / n).st_mtime_ns) for n in names}


def chats(stack_file: Path, tmp_path: Path) -> bool:
    """A guest says something in a room and hears the room's echo of it."""
    info = load_stack_file(stack_file)
    client = ChatClient(info, Identity.guest(info, SessionFile(tmp_path / "session.json")))
    client.start()
    try:
        said = client.say("lobby", "still here")
        echo = client.wait_for(lambda e: isinstance(e, Message) and e.id == said, timeout=15)
        return echo is not None
    finally:
        client.stop()


def test_a_second_up_on_the_same_state_dir_is_refused_and_the_first_keeps_chatting(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    with up_process(state) as info:
        before = snapshot(state)
        web = info["web"]["url"]
        for args in (
            up_arguments(state)[1:],  # every port 0
            ["--state-dir", str(state)],  # the default ports
        ):
            refused = iotchat_up(*args)
            assert refused.returncode == 1
            message = refused.stderr.strip().splitlines()[-1]
            pid = re.search(r"pid (\d+)", message)
            assert pid is not None and int(pid.group(1)) != os.getpid()
            assert message == (
                f"iotchat up: iotchat is already running here (pid {pid.group(1)}, web on {web}); "
                "stop it or pass --state-dir for a second stack"
            )
            assert "ready" not in refused.stdout
        assert snapshot(state) == before
        assert json.loads((state / "stack.json").read_text()) == info
        assert chats(state / "stack.json", tmp_path)


def test_a_port_in_use_names_its_option_and_the_stack_holding_it(tmp_path: Path) -> None:
    with up_process(tmp_path / "first") as info:
        taken = info["iot"]["mqttPort"]
        second = tmp_path / "second"
        args = [*up_arguments(second)[1:], "--mqtt-port", str(taken)]
        refused = iotchat_up(*args)
        assert refused.returncode == 1
        assert f"port {taken} (--mqtt-port) is already in use by another iotchat stack (pid " in (
            refused.stderr
        )
        assert str(tmp_path / "first") in refused.stderr
        assert not (second / "stack.json").exists()


def test_a_lock_left_by_a_dead_stack_is_taken_over_with_a_note(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    (state / "up.lock").write_text(json.dumps({"pid": gone.pid, "web": None}))
    log = tmp_path / "up.log"
    with up_process(state, log=log) as info:
        assert info["kind"] == "local"
        holder: dict[str, Any] = json.loads((state / "up.lock").read_text())
        assert holder["pid"] != gone.pid and holder["web"] == info["web"]["url"]
        wait_for(lambda: "Ctrl-C stops." in log.read_text(), 10, 0.05)
    output = log.read_text()
    assert f"took over the state dir's lock from pid {gone.pid}" in output
    # The ready banner says where to go; the last line says everything is down.
    assert f"  web app      {info['web']['url']}" in output
    assert f"export AWS_ENDPOINT_URL={info['api']['endpoint']}" in output
    assert output.splitlines()[-1] == "stopped"
    assert (state / "up.lock").read_text() == ""  # released: names no running stack
