"""``iotchat logs FUNCTION [--follow]`` as a user runs it: a real process over real log files."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from pathlib import Path

from infra.local.lambda_runtime import LambdaRuntime
from tests.infra.local.lambda_runtime.helpers import fn, run_runtime
from tests.support.waiting import wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTIONS = [fn("chatty", "chatty")]


def _invoke_chatty(state_dir: Path) -> str:
    async def body(runtime: LambdaRuntime) -> str:
        result = await runtime.invoke("chatty", {})
        assert result.ok
        return result.request_id

    return run_runtime(state_dir, FUNCTIONS, body)


def _iotchat(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", *args],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_logs_prints_the_function_log(tmp_path: Path) -> None:
    request_id = _invoke_chatty(tmp_path)
    process = _iotchat("logs", "chatty", "--state-dir", str(tmp_path))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert f"START RequestId: {request_id} Version: $LATEST" in out
    assert "hello from the handler, not JSON {" in out
    assert f"REPORT RequestId: {request_id}" in out


def test_logs_unknown_function_is_an_error(tmp_path: Path) -> None:
    _invoke_chatty(tmp_path)
    process = _iotchat("logs", "no-such-function", "--state-dir", str(tmp_path))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert out == ""
    assert "no function named 'no-such-function'" in err
    assert "chatty" in err  # the known names are listed


def test_logs_follow_shows_lines_appended_later_until_ctrl_c(tmp_path: Path) -> None:
    first = _invoke_chatty(tmp_path)
    # As from a terminal: SIGINT at its default even if this test runs as a background job
    # (which a non-interactive shell starts with SIGINT ignored, inherited by children).
    process = _iotchat(
        "logs",
        "chatty",
        "--follow",
        "--state-dir",
        str(tmp_path),
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    seen: list[str] = []
    stdout, stderr = process.stdout, process.stderr
    assert stdout is not None and stderr is not None  # both piped
    reader = threading.Thread(target=lambda: seen.extend(iter(stdout.readline, "")), daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(first in line for line in seen), timeout=30)
        second = _invoke_chatty(tmp_path)  # a new invocation appends to the same log
        wait_for(lambda: any(f"END RequestId: {second}" in line for line in seen), timeout=30)
    finally:
        process.send_signal(signal.SIGINT)
        returncode = process.wait(timeout=30)
        reader.join(10)
    assert returncode == 0, stderr.read()
    assert sum("hello from the handler" in line for line in seen) == 2
