"""Private state: another local user can read nothing of ``iotchat up``'s state dir.

It holds the DynamoDB and Kinesis data and logs (every direct message in clear text), Lambda
logs and failure records, the gateway's sessions, the CA key, Cognito's users and outbox, the
registry and the stack file. ``iotchat up`` (its own process, as a user runs it) makes the dir
``0700`` and every file in it ``0600``, tightening what an older version left ``0755``/``0644``
and the ``up.log`` a wrapper redirected its output to, and what it and its children create
later is private too (umask 077). Verification codes stay in Cognito's outbox, never in the
stack's log.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from tests.e2e.chat.conftest import (
    ChatClient,
    inbox,
    room_topic,
    say_hello,
    signed_in_identity,
    unique,
)
from tests.infra.local.stack_process import running_stack

pytestmark = pytest.mark.timeout(90)


class StackView:
    """What the chat and Cognito test helpers need of a stack, for one in its own process."""

    def __init__(self, info: dict[str, Any], state_dir: Path) -> None:
        self.info = info
        self.state_dir = state_dir
        self.stack = self  # tests.support.cognito reads stack.stack.state_dir (the outbox)

    @property
    def endpoint(self) -> str:
        return str(self.info["api"]["endpoint"])


def modes(state_dir: Path) -> Iterator[tuple[Path, int, bool]]:
    """Every directory and file under ``state_dir`` (itself included): path, mode, is a dir."""
    yield state_dir, stat.S_IMODE(state_dir.lstat().st_mode), True
    for root, dirs, files in os.walk(state_dir):
        for name in dirs + files:
            path = Path(root, name)
            try:
                st = path.lstat()
            except FileNotFoundError:  # a LevelDB compaction or a rename meanwhile
                continue
            if not stat.S_ISLNK(st.st_mode):
                yield path, stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode)


def assert_private(state_dir: Path) -> set[str]:
    """Every directory 0700, every file without group/other bits; returns the relative paths."""
    seen = set()
    loose = []
    for path, mode, is_dir in modes(state_dir):
        seen.add(str(path.relative_to(state_dir)))
        if (is_dir and mode != 0o700) or mode & 0o077:
            loose.append(f"{path.relative_to(state_dir)}: {mode:o}")
    assert loose == [], loose
    return seen


def older_state(state_dir: Path) -> None:
    """What an older version (or a wrapper) left: a 0755 dir with 0644 files in it."""
    state_dir.mkdir(parents=True)
    os.chmod(state_dir, 0o755)
    for relative, content in (
        ("logs/iotchat-commands.log", "START RequestId: old\n"),
        ("lambda/iotchat-commands/failures.jsonl", '{"requestPayload": "an old secret"}\n'),
    ):
        path = state_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o755)
        path.write_text(content)
        os.chmod(path, 0o644)


def test_the_state_dir_and_every_file_in_it_are_private(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    older_state(state_dir)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o755
    up_log = state_dir / "up.log"  # as benchmarks/reliability/stack_process.py redirects it
    with up_log.open("ab") as output:
        os.chmod(up_log, 0o644)
        with running_stack(state_dir, output=cast(int, output)) as (proc, info):
            stack = StackView(info, state_dir)
            # Direct messages are between signed-in people, through the signed-in door.
            ada_id, ada_creds, ada_token = signed_in_identity(cast(Any, stack))
            bob_id, bob_creds, bob_token = signed_in_identity(cast(Any, stack))
            ada = ChatClient(cast(Any, stack), ada_id, ada_creds, "Ada")
            bob = ChatClient(cast(Any, stack), bob_id, bob_creds, "Bob")
            try:
                ada.connect()
                bob.connect()
                say_hello(ada, ada_token)
                say_hello(bob, bob_token)
                # A room message (rules, republish, the messages table)...
                room = unique("room")
                assert bob.subscribe(room_topic(room)) == [1]
                said = ada.say(room, "hello room")
                bob.wait_for_message(room_topic(room), lambda m: m.get("id") == said, "room")
                # ...and a direct message (the commands Lambda, stored in clear text).
                secret = f"dm secret {uuid.uuid4().hex}"
                dm = unique("dm")
                ada.send_private("message", id=dm, recipient=bob.client_id, body=secret)
                bob.wait_for_message(inbox(bob.client_id), lambda m: m.get("id") == dm, "DM")
            finally:
                ada.close()
                bob.close()
            running = assert_private(state_dir)
            proc.send_signal(signal.SIGTERM)  # a clean stop saves the sessions, flushes logs
            assert proc.wait(30) == 0
    stopped = assert_private(state_dir)

    # The walk saw the files that matter, private while running and after the stop.
    assert {"stack.json", "up.log", "ca/ca.key", "ca/ca.pem", "dynamodb.log"} <= running
    assert {"logs/iotchat-commands.log", "lambda/iotchat-commands/failures.jsonl"} <= stopped
    assert {"dynamodb.log", "kinesis.log", "cognito", "dynamodb", "kinesis"} <= stopped
    # The direct message is somewhere in there in clear text: that is why all of it is private.
    holders = [
        path
        for path, _, is_dir in modes(state_dir)
        if not is_dir and secret.encode() in path.read_bytes()
    ]
    assert holders, "the direct message should be stored under the state dir"

    # Verification codes stay in the outbox (0600): never in the stack's log (up.log, INFO).
    outbox = state_dir / "cognito" / "outbox.jsonl"
    codes = [json.loads(line)["code"] for line in outbox.read_text().splitlines()]
    assert codes, "signing Ada up mailed a code"
    logged = up_log.read_text(errors="replace")
    assert "local stack ready" in logged  # the log is there and at INFO
    for code in codes:
        assert not re.search(rf"(?<![0-9A-Za-z]){re.escape(code)}(?![0-9A-Za-z])", logged)
