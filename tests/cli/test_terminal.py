"""``iotchat send`` / ``listen`` / ``signup`` / ``login`` as a user runs them: subprocesses
against a local stack, reading their output."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO

from client import events
from client.chat_client import ChatClient
from tests.support.cognito import outbox_codes
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for

CLI = [sys.executable, "-m", "cli.main"]


def run_cli(
    args: list[str], env: dict[str, str], input_: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env=env, input=input_, capture_output=True, text=True, timeout=60
    )


def cli_env(chat_stack: InProcessStack, tmp_path: Path, who: str) -> dict[str, str]:
    return {
        **os.environ,
        "IOTCHAT_STACK_FILE": str(chat_stack.stack.stack_file),
        "IOTCHAT_SESSION_FILE": str(tmp_path / f"{who}-sessions.json"),
    }


class Lines:
    """Collects a child's stdout lines on a thread, for polling with deadlines."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for text in stream:
            self.lines.append(text.rstrip("\n"))


def test_send_then_listen_json_gets_history_and_live_messages(
    chat_stack: InProcessStack, tmp_path: Path
) -> None:
    room = f"cli-{uuid.uuid4().hex[:8]}"
    alice = cli_env(chat_stack, tmp_path, "alice")
    first = run_cli(["send", "--room", room, "--name", "Alice", "first <b>words</b>"], alice)
    assert first.returncode == 0, first.stderr
    first_id = first.stdout.strip()
    listener = subprocess.Popen(
        [*CLI, "listen", "--room", room, "--json"],
        env=cli_env(chat_stack, tmp_path, "bob"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None  # stdout=PIPE
    try:
        out = Lines(listener.stdout)
        objects = lambda: [json.loads(line) for line in out.lines]  # noqa: E731
        history = wait_for(
            lambda: next((o for o in objects() if o["event"] == "history"), None), timeout=30
        )
        assert [m["id"] for m in history["messages"]] == [first_id]
        assert history["messages"][0]["text"] == "first <b>words</b>"
        second = run_cli(["send", "--room", room, "live one"], alice)
        assert second.returncode == 0, second.stderr
        live = wait_for(
            lambda: next(
                (
                    o
                    for o in objects()
                    if o["event"] == "message" and o["id"] == second.stdout.strip()
                ),
                None,
            ),
            timeout=20,
        )
        assert live["text"] == "live one" and live["room"] == room
    finally:
        listener.send_signal(signal.SIGINT)
        assert listener.wait(20) == 0  # Ctrl-C ends it cleanly


def test_send_refused_and_missing_stack_exit_codes(
    chat_stack: InProcessStack, tmp_path: Path
) -> None:
    env = cli_env(chat_stack, tmp_path, "carol")
    refused = run_cli(["send", "--room", "not a room", "hi"], env)
    assert refused.returncode == 1 and "INVALID_ROOM" in refused.stderr
    missing = run_cli(
        ["send", "--room", "x", "hi"], {**env, "IOTCHAT_STACK_FILE": str(tmp_path / "none.json")}
    )
    assert missing.returncode == 4 and "iotchat up" in missing.stderr


def test_signup_with_the_outbox_code_then_send_as_the_user(
    chat_stack: InProcessStack, tmp_path: Path, new_client: Callable[..., ChatClient]
) -> None:
    email = f"u{uuid.uuid4().hex[:8]}@example.com"
    handle = f"dora{uuid.uuid4().hex[:8]}"
    env = cli_env(chat_stack, tmp_path, "dora")
    for refused in ("Dora Explorer", "guest-dora", "x"):  # what a handle cannot be
        wrong = run_cli(["signup", "--email", email, "--password", "P", "--handle", refused], env)
        assert wrong.returncode == 2 and "cannot be a handle" in wrong.stderr
    process = subprocess.Popen(
        [*CLI, "signup", "--email", email, "--password", "Correct-Horse-9", "--handle", handle],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    (code,) = wait_for(lambda: outbox_codes(chat_stack.stack.state_dir, email), timeout=20)
    stdout, stderr = process.communicate(code + "\n", timeout=60)
    assert process.returncode == 0, stderr
    assert f"signed in as {email}" in stdout and "outbox" in stderr
    sessions = json.loads((tmp_path / "dora-sessions.json").read_text())
    assert oct((tmp_path / "dora-sessions.json").stat().st_mode & 0o777) == "0o600"
    (entry,) = sessions.values()
    user_id = entry["user"]["identityId"]
    room = f"cli-{uuid.uuid4().hex[:8]}"
    reader = new_client(name_wait=5.0)
    reader.join(room)
    sent = run_cli(["send", "--room", room, "as a user"], env)
    assert sent.returncode == 0, sent.stderr
    seen = reader.wait_for(
        lambda e: isinstance(e, events.Message) and e.id == sent.stdout.strip(), timeout=20
    )
    assert isinstance(seen, events.Message)
    assert (seen.sender, seen.handle, seen.guest) == (user_id, handle, False)  # chosen at sign-up
    bad = run_cli(["login", "--email", email, "--password", "wrong-Password-1"], env)
    assert bad.returncode == 3
    good = run_cli(["login", "--email", email, "--password", "Correct-Horse-9"], env)
    assert good.returncode == 0 and user_id in good.stdout


def test_listen_ends_with_exit_1_on_a_refused_room_and_keeps_listening_to_a_good_one(
    chat_stack: InProcessStack, tmp_path: Path
) -> None:
    env = cli_env(chat_stack, tmp_path, "erin")
    refused = subprocess.run(
        [*CLI, "listen", "--room", "not a room"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "could not join 'not a room': room must be" in refused.stderr
    assert "(INVALID_ROOM)" in refused.stderr and "AWS_" not in refused.stderr

    as_json = subprocess.run(
        [*CLI, "listen", "--room", "bad/room", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert as_json.returncode == 1
    printed = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert printed[-1]["event"] == "chaterror" and printed[-1]["code"] == "INVALID_ROOM"

    good = f"cli-{uuid.uuid4().hex[:8]}"
    listener = subprocess.Popen(
        [*CLI, "listen", "--room", good, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None  # stdout=PIPE
    try:
        out = Lines(listener.stdout)
        wait_for(lambda: any('"history"' in line for line in out.lines), timeout=30)
        assert listener.poll() is None  # a room it could join: it goes on listening
    finally:
        listener.send_signal(signal.SIGINT)
        assert listener.wait(20) == 0


def test_an_unreachable_stack_is_exit_4_in_words(
    chat_stack: InProcessStack, tmp_path: Path
) -> None:
    with socket.socket() as unused:  # a loopback port nothing listens on once closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    stack = json.loads(chat_stack.stack.stack_file.read_text())
    stack["api"]["endpoint"] = f"http://127.0.0.1:{port}"
    moved = tmp_path / "down.json"
    moved.write_text(json.dumps(stack))
    env = {**cli_env(chat_stack, tmp_path, "fred"), "IOTCHAT_STACK_FILE": str(moved)}
    for args in (["send", "--room", "x", "hi"], ["listen", "--room", "x"]):
        down = run_cli(args, env)
        assert down.returncode == 4, down.stderr
        assert "is the stack running?" in down.stderr and "Traceback" not in down.stderr


def test_listen_prints_stored_names_and_handles_never_a_claimed_name(
    chat_stack: InProcessStack, tmp_path: Path
) -> None:
    room = f"cli-{uuid.uuid4().hex[:8]}"
    listener = subprocess.Popen(
        [*CLI, "listen", "--room", room],
        env=cli_env(chat_stack, tmp_path, "hank"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None  # stdout=PIPE
    try:
        out = Lines(listener.stdout)
        wait_for(lambda: any("online" in line for line in out.lines), timeout=30)
        alice = cli_env(chat_stack, tmp_path, "alice")
        named = run_cli(["send", "--room", room, "--name", "Alice", "my name is stored"], alice)
        assert named.returncode == 0, named.stderr
        line = wait_for(
            lambda: next((t for t in out.lines if "my name is stored" in t), None), timeout=30
        )
        assert re.search(r"#cli-\w+ <Alice @guest-[0-9a-f]+ \(guest\)> my name is stored$", line)
    finally:
        listener.send_signal(signal.SIGINT)
        assert listener.wait(20) == 0
