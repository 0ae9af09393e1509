"""An Event invocation carries the trace of the message that caused it: into the handler's
context and ``_X_AMZN_TRACE_ID``, onto its REPORT line, and into a FunctionExecution entry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.local.lambda_runtime import LambdaRuntime, log_path
from infra.local.trace import TraceLog, traced
from tests.infra.local.lambda_runtime.helpers import fn, run_runtime

TRACE = "4f4d22fd-b720-49d3-991f-00000000c351"
XRAY = "Root=1-4f4d22fd-b72049d3991f00000000c351;Sampled=0"


def run_traced(state: Path, events: list[tuple[str | None, dict[str, Any]]]) -> TraceLog:
    entries = TraceLog(None, "000000000000")

    async def body(runtime: LambdaRuntime) -> None:
        runtime.trace = entries
        for trace_id, event in events:
            with traced(trace_id):
                runtime.invoke_async("traced", event)
        await runtime.drain(60)

    run_runtime(state, [fn("traced", "traced")], body, retry_delays=(0.01, 0.01))
    return entries


def test_the_handler_sees_the_trace_and_a_direct_invoke_has_none(tmp_path: Path) -> None:
    entries = run_traced(tmp_path, [(TRACE, {}), (None, {})])
    log = log_path(tmp_path, "traced").read_text()
    assert f"trace={TRACE} env={XRAY}" in log
    assert "trace=None env=None" in log  # nothing left over from the previous invocation
    reports = [line for line in log.splitlines() if line.startswith("REPORT")]
    assert sum("\tXRAY TraceId: 1-4f4d22fd-b72049d3991f00000000c351" in r for r in reports) == 1
    executions = [e for e in entries.recent if e["eventType"] == "FunctionExecution"]
    assert sorted((e["traceId"], e["status"]) for e in executions) == [
        ("", "Success"),
        (TRACE, "Success"),
    ]
    assert all(e["functionName"] == "traced" and e["requestId"] for e in executions)


def test_a_failing_invocation_is_traced_once_per_attempt_with_its_error(tmp_path: Path) -> None:
    entries = run_traced(tmp_path, [(TRACE, {"fail": True})])
    executions = [e for e in entries.recent if e["eventType"] == "FunctionExecution"]
    assert [(e["attempt"], e["status"]) for e in executions] == [
        (1, "Failure"),
        (2, "Failure"),
        (3, "Failure"),
    ]
    assert all(e["traceId"] == TRACE for e in executions)
    assert executions[0]["details"] == "RuntimeError: asked to fail"
    assert len({e["requestId"] for e in executions}) == 1  # one event, retried
