"""``iotchat logs FUNCTION [--follow]`` as a user runs it: a real process over real log files."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from infra.local.lambda_runtime import LambdaRuntime, log_path
from infra.local.trace import traced
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


def test_logs_raw_prints_the_function_log_as_lambda_writes_it(tmp_path: Path) -> None:
    request_id = _invoke_chatty(tmp_path)
    process = _iotchat("logs", "chatty", "--raw", "--state-dir", str(tmp_path))
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
        "--raw",
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


def test_logs_prints_each_line_with_its_time_and_request_id(tmp_path: Path) -> None:
    request_id = _invoke_chatty(tmp_path)
    process = _iotchat("logs", "chatty", "--state-dir", str(tmp_path))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert not any(line.startswith(("START", "END")) for line in lines)
    logged = next(line for line in lines if "a warning with the request id" in line)
    assert re.match(rf"^\d\d:\d\d:\d\d\.\d{{3}} {request_id[:8]} -\s+WARNING ", logged)
    printed = next(line for line in lines if "hello from the handler" in line)
    assert printed.split()[1] == request_id[:8]
    report = next(line for line in lines if " REPORT " in line)
    assert report.split()[1] == request_id[:8] and " ms" in report


def test_logs_since_keeps_only_recent_invocations(tmp_path: Path) -> None:
    old = _invoke_chatty(tmp_path)
    log = log_path(tmp_path, "chatty")
    # The first invocation, as if it had run two hours ago.
    two_hours_ago = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() - 7200))
    text = log.read_text()
    log.write_text(re.sub(r"\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.", f"\t{two_hours_ago}.", text))
    new = _invoke_chatty(tmp_path)
    recent = _iotchat("logs", "chatty", "--since", "10m", "--state-dir", str(tmp_path))
    out, err = recent.communicate(timeout=30)
    assert recent.returncode == 0, err
    assert new[:8] in out and old[:8] not in out
    everything = _iotchat("logs", "chatty", "--since", "3h", "--state-dir", str(tmp_path))
    out, _ = everything.communicate(timeout=30)
    assert new[:8] in out and old[:8] in out
    refused = _iotchat("logs", "chatty", "--since", "yesterday", "--state-dir", str(tmp_path))
    _, err = refused.communicate(timeout=30)
    assert refused.returncode == 2 and "not a duration" in err


def test_logs_name_the_trace_of_each_invocation_s_lines(tmp_path: Path) -> None:
    trace_id = "4f4d22fd-b720-49d3-991f-00000000c351"

    async def body(runtime: LambdaRuntime) -> None:
        with traced(trace_id):
            runtime.invoke_async("chatty", {})
        await runtime.drain(30)

    run_runtime(tmp_path, FUNCTIONS, body)
    process = _iotchat("logs", "chatty", "--state-dir", str(tmp_path))
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = out.splitlines()
    assert len(lines) >= 4  # print, fd 1, logging, REPORT
    assert all(line.split()[2] == trace_id[:8] for line in lines)
