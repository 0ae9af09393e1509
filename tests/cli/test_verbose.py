"""``-v`` shows the stack's own debug lines, ``-vv`` third-party libraries' too."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cli.options import CHATTY_LIBRARIES, OWN_LOGGERS, setup_logging
from tests.cli.test_up_lock import chats
from tests.support.up_command import ROOT, up_arguments
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def restored_levels() -> Iterator[None]:
    names = ["", *OWN_LOGGERS, *CHATTY_LIBRARIES]
    levels = {name: logging.getLogger(name).level for name in names}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.mark.parametrize(
    ("verbose", "own_debug", "library_info", "library_debug"),
    [(0, False, False, False), (1, True, False, False), (2, True, True, True)],
)
def test_each_v_opens_one_more_level(
    restored_levels: None, verbose: int, own_debug: bool, library_info: bool, library_debug: bool
) -> None:
    setup_logging(verbose)
    assert logging.getLogger("iotchat.rules").isEnabledFor(logging.DEBUG) is own_debug
    assert logging.getLogger("infra.local.registry.watch").isEnabledFor(logging.DEBUG) is own_debug
    assert logging.getLogger("iotchat.stack").isEnabledFor(logging.INFO)
    assert logging.getLogger("botocore.credentials").isEnabledFor(logging.INFO) is library_info
    assert logging.getLogger("websockets.server").isEnabledFor(logging.DEBUG) is library_debug


def test_up_v_logs_the_stack_s_steps_and_no_library_chatter(tmp_path: Path) -> None:
    state = tmp_path / "state"
    log = tmp_path / "up.log"
    with log.open("wb") as output:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *up_arguments(state), "-v"],
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: (state / "stack.json").exists() or proc.poll() is not None, 60, 0.1)
        assert proc.poll() is None, log.read_text()
        assert chats(state / "stack.json", tmp_path)
        wait_for(lambda: "rule chat_room_message matched" in log.read_text(), 20, 0.1)
    finally:
        proc.terminate()
        proc.wait(30)
    text = log.read_text()
    assert " DEBUG   iotchat.trace: publish chat/out from " in text  # each publish, with its trace
    assert "$aws/events/presence/connected/" in text  # connections, as lifecycle events
    assert not any(
        f" {library}" in line
        for line in text.splitlines()
        for library in ("botocore", "websockets", "urllib3")
    )
