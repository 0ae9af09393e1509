"""File descriptors: the stack raises its own soft ``RLIMIT_NOFILE`` and survives running out.

Every socket a client opens costs the stack a descriptor. Under the common ``ulimit -n 1024``
a thousand idle sockets would otherwise be enough to stop every listener (health, Cognito,
MQTT) from accepting. Two defences live here; the gateway adds its own (a connect deadline
and a cap on connections not yet past CONNECT, ``gateway/server.py``):

- :func:`raise_open_files_limit` lifts the soft limit to the hard one at start, as servers
  such as nginx (``worker_rlimit_nofile``) or Mosquitto's packaging do;
- :func:`quiet_accept_errors`: when ``accept()`` still fails with EMFILE/ENFILE, asyncio
  already stops accepting on that listener for a moment (``ACCEPT_RETRY_DELAY``) and tries
  again; this handler logs that once a minute instead of a traceback per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from typing import Any

log = logging.getLogger("iotchat.stack")

# An "unlimited" hard limit is capped here: epoll copes, and a runaway leak still hits a wall.
UNLIMITED_CAP = 1 << 20
ACCEPT_ERROR_LOG_INTERVAL = 60.0
_ACCEPT_MESSAGE = "socket.accept() out of system resource"


def raise_open_files_limit() -> tuple[int, int]:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return (soft, hard) afterwards.
    Never fails the start: a limit that cannot be raised is logged and kept."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-files limit from %d to %d: %s", soft, target, exc)
        else:
            log.info("open-files limit raised from %d to %d", soft, target)
            soft = target
    return soft, hard


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Log asyncio's "out of system resource" accept errors once a minute, not per attempt;
    every other error goes to the handler that was there before."""
    previous = loop.get_exception_handler()
    last_logged = [-ACCEPT_ERROR_LOG_INTERVAL]
    suppressed = [0]

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_MESSAGE:
            now = time.monotonic()
            if now - last_logged[0] < ACCEPT_ERROR_LOG_INTERVAL:
                suppressed[0] += 1
                return
            last_logged[0] = now
            log.warning(
                "out of file descriptors (%s): not accepting for a moment%s",
                context.get("exception"),
                f" ({suppressed[0]} more since the last report)" if suppressed[0] else "",
            )
            suppressed[0] = 0
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


__all__ = ["quiet_accept_errors", "raise_open_files_limit"]
