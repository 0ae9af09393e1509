"""One warm Lambda execution environment: ``python -m infra.local.lambda_runtime.worker HANDLER``.

The parent speaks newline-delimited JSON over what were this process's stdin and stdout. Both
are moved to private descriptors before the handler is imported, then fd 0 becomes /dev/null and
fd 1 joins fd 2 (the function's log file), so anything a handler prints, at the Python or the C
level, goes to the log and can never corrupt the protocol.

Protocol (one JSON object per line):
  worker -> parent, once: {"type": "ready", "initMs": float}
                       or {"type": "initError", "error": {errorMessage, errorType, ...}}
  parent -> worker:       {"id": request id, "timeoutMs": int, "traceId"?: str, "event": ...}
  worker -> parent:       {"id", "ok": true, "payload", "durationMs", "maxMemoryMb"}
                       or {"id", "ok": false, "error": {...}, "durationMs", "maxMemoryMb"}
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, BinaryIO

from infra.local.lambda_runtime import awsformat
from infra.local.lambda_runtime.context import LambdaContext
from infra.local.trace import xray_header

# botocore copies it into each request's X-Amzn-Trace-Id header (what the API endpoint reads
# back as the trace of the messages a handler publishes).
TRACE_VARIABLE = "_X_AMZN_TRACE_ID"
# SDK chatter ("Found credentials in environment variables") is not the handler's story.
_QUIET_LOGGERS = ("botocore", "boto3", "urllib3")


def _take_protocol_fds() -> tuple[BinaryIO, BinaryIO]:
    """Keep stdin/stdout for the protocol; point the handler's stdio at /dev/null and the log."""
    proto_in = os.fdopen(os.dup(0), "rb")
    proto_out = os.fdopen(os.dup(1), "wb", buffering=0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):  # always, in a worker process
            stream.reconfigure(line_buffering=True)
    return proto_in, proto_out


class _RequestIdFilter(logging.Filter):
    request_id = ""

    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = self.request_id
        return True


def _begin_trace(trace_id: str | None) -> None:
    """Set (or clear) the invocation's ``_X_AMZN_TRACE_ID``, as Lambda does per invocation."""
    if trace_id:
        os.environ[TRACE_VARIABLE] = xray_header(trace_id)
    else:
        os.environ.pop(TRACE_VARIABLE, None)


def _setup_logging() -> _RequestIdFilter:
    """Root logger as in AWS's Python runtime: level WARNING, request id in every line."""
    request_filter = _RequestIdFilter()
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(request_filter)
    formatter = logging.Formatter(
        "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s",
        "%Y-%m-%dT%H:%M:%S",
    )
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    logging.getLogger().addHandler(handler)
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return request_filter


def _load_handler(spec: str) -> Callable[[Any, LambdaContext], Any]:
    module_name, _, function_name = spec.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    handler = getattr(module, function_name, None)
    if not callable(handler):
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return handler


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error = {"errorMessage": message, "errorType": error_type}


def _send(out: BinaryIO, message: dict) -> None:
    out.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")


def main() -> int:
    proto_in, proto_out = _take_protocol_fds()
    request_filter = _setup_logging()
    memory_size = int(os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128"))
    # Init Duration counts from the parent's spawn: interpreter start-up is part of a cold start.
    spawned = float(os.environ.get("IOTCHAT_LAMBDA_SPAWN_TIME", time.time()))
    try:
        handler = _load_handler(sys.argv[1])
    except _InitError as exc:
        sys.stderr.write(f"[ERROR] {exc.error['errorType']}: {exc.error['errorMessage']}\n")
        _send(proto_out, {"type": "initError", "error": exc.error})
        return 1
    init_ms: float | None = (time.time() - spawned) * 1000
    _send(proto_out, {"type": "ready", "initMs": init_ms})

    for line in proto_in:
        request = json.loads(line)
        request_id = request["id"]
        request_filter.request_id = request_id
        trace_id = request.get("traceId")
        _begin_trace(trace_id)
        context = LambdaContext(request_id, request["timeoutMs"], trace_id)
        sys.stderr.write(awsformat.start_line(request_id))
        began = time.perf_counter()
        reply: dict[str, Any] = {"id": request_id}
        try:
            result = handler(request["event"], context)
            reply["ok"] = True
            reply["payload"] = result
            encoded = json.dumps(reply, separators=(",", ":"))
        except Exception as exc:
            error = awsformat.exception_error(exc, exc.__traceback__, request_id)
            if isinstance(exc, TypeError | ValueError) and "ok" in reply:
                error = awsformat.marshal_error(exc)
            sys.stderr.write(f"[ERROR] {error['errorType']}: {error['errorMessage']}\n")
            if "stackTrace" in error:
                sys.stderr.write("Traceback (most recent call last):\n")
                sys.stderr.write("".join(error["stackTrace"]))
            reply = {"id": request_id, "ok": False, "error": error}
            encoded = json.dumps(reply, separators=(",", ":"))
        duration_ms = (time.perf_counter() - began) * 1000
        sys.stdout.flush()
        max_memory = awsformat.peak_memory_mb()
        sys.stderr.write(awsformat.end_line(request_id))
        sys.stderr.write(
            awsformat.report_line(
                request_id, duration_ms, memory_size, max_memory, init_ms, trace=trace_id
            )
        )
        init_ms = None
        encoded = encoded[:-1] + f',"durationMs":{duration_ms},"maxMemoryMb":{max_memory}}}'
        proto_out.write(encoded.encode() + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
