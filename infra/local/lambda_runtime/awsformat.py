"""Lambda's own text and JSON formats: log lines and error payloads, as AWS writes them.

Shared by the worker (which writes START/END/REPORT around each handler call, so they land in
the log in order with the handler's output) and the parent (which writes them for invocations it
had to kill). Kept import-light because the worker imports it on every cold start.
"""

from __future__ import annotations

import math
import time
import traceback
from types import TracebackType
from typing import Any

VERSION = "$LATEST"

# An error payload as Invoke returns it: errorType, errorMessage and, for exceptions, the trace.
ErrorPayload = dict[str, Any]


def utc_stamp(epoch: float | None = None) -> str:
    """``2026-01-31T12:00:00.123Z``: the timestamp Lambda puts in log lines and records."""
    epoch = time.time() if epoch is None else epoch
    whole = time.gmtime(epoch)
    return time.strftime("%Y-%m-%dT%H:%M:%S", whole) + f".{int(epoch % 1 * 1000):03d}Z"


def start_line(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: {VERSION}\n"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}\n"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_size: int,
    max_memory_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
    trace: str | None = None,
) -> str:
    """AWS's REPORT line; with ``trace`` (the message's trace id), a last field of the local
    stack's own, ``XRAY TraceId: 1-...``, the trace in the form ``_X_AMZN_TRACE_ID`` gives it,
    so a log line leads to ``iotchat trace --id``."""
    line = (
        f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
        f"Billed Duration: {max(1, math.ceil(duration_ms))} ms\t"
        f"Memory Size: {memory_size} MB\tMax Memory Used: {max_memory_mb} MB"
    )
    if init_ms is not None:
        line += f"\tInit Duration: {init_ms:.2f} ms"
    if status is not None:
        line += f"\tStatus: {status}"
    if trace:
        digits = trace.replace("-", "")
        line += f"\tXRAY TraceId: 1-{digits[:8]}-{digits[8:]}"
    return line + "\n"


def peak_memory_mb(pid: int | str = "self") -> int:
    """Peak resident memory (VmHWM) of a process, for REPORT's "Max Memory Used"; 0 if gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 0


def exception_error(
    exc: BaseException, tb: TracebackType | None, request_id: str | None = None
) -> ErrorPayload:
    """The payload of an unhandled handler exception (``FunctionError: Unhandled``)."""
    error: ErrorPayload = {"errorMessage": str(exc), "errorType": type(exc).__name__}
    if request_id is not None:
        error["requestId"] = request_id
    error["stackTrace"] = traceback.format_list(traceback.extract_tb(tb))
    return error


def timeout_message(timeout_s: float) -> str:
    return f"Task timed out after {timeout_s:.2f} seconds"


def timeout_error(request_id: str, timeout_s: float) -> ErrorPayload:
    """What Invoke returns when Lambda stops a function at its timeout."""
    return {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: {timeout_message(timeout_s)}",
    }


def exit_error(request_id: str, returncode: int | None) -> ErrorPayload:
    """What Invoke returns when the runtime process died in the middle of an invocation."""
    if returncode is not None and returncode < 0:
        how = "signal: killed" if returncode == -9 else f"signal: {-returncode}"
    else:
        how = f"exit status {returncode}"
    return {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {how}",
    }


def marshal_error(exc: Exception) -> ErrorPayload:
    """A handler returned something that is not JSON."""
    return {
        "errorMessage": f"Unable to marshal response: {exc}",
        "errorType": "Runtime.MarshalError",
    }
