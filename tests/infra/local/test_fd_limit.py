"""The stack's own descriptor limit, and EMFILE on accept logged once rather than per attempt."""

from __future__ import annotations

import asyncio
import errno
import logging
import resource
import subprocess
import sys

import pytest

from infra.local.fd_limit import quiet_accept_errors


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    """In a child started with ``ulimit -Sn 256``, so this process keeps its own limit."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip("the hard limit is already tiny")
    code = (
        "import resource; from infra.local.fd_limit import raise_open_files_limit as r; "
        "print(*r(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard)),
    )
    raised, reported_hard, now = (int(v) for v in done.stdout.split())
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    assert raised == now == expected and reported_hard == hard


def test_out_of_descriptors_on_accept_is_logged_once_and_other_errors_still_reach_the_handler(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    seen: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        quiet_accept_errors(loop)
        failure = OSError(errno.EMFILE, "Too many open files")
        with caplog.at_level(logging.WARNING, logger="iotchat.stack"):
            for _ in range(50):
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": failure}
                )
        warnings = [r for r in caplog.records if "out of file descriptors" in r.getMessage()]
        assert len(warnings) == 1 and not seen
        loop.call_exception_handler({"message": "something else"})
        assert [c["message"] for c in seen] == ["something else"]
    finally:
        loop.close()
