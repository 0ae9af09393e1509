"""The local Lambda runtime, driving real worker processes through the fixture handlers."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.local.lambda_runtime import (
    LambdaRuntime,
    ResourceNotFoundError,
    failures_path,
    log_path,
)

from .helpers import ENV_BASE, fn, process_gone, run_runtime

ARN = "arn:aws:lambda:us-east-1:000000000000:function:{}"


def test_warm_invoke_returns_result_with_environment_and_context(tmp_path: Path) -> None:
    functions = [fn("echo", "echo", environment={"GREETING": "hello"}, memorySize=256)]

    async def body(runtime: LambdaRuntime):
        first = await runtime.invoke("echo", {"n": 1})
        second = await runtime.invoke(ARN.format("echo") + ":$LATEST", {"n": 2})
        return first, second

    first, second = run_runtime(tmp_path, functions, body)
    assert first.ok and second.ok
    assert (first.cold, second.cold) == (True, False)
    assert second.payload["pid"] == first.payload["pid"]  # the warm worker was reused
    assert second.payload["event"] == {"n": 2}
    env = first.payload["env"]
    assert env["GREETING"] == "hello"
    assert env["AWS_ENDPOINT_URL"] == ENV_BASE["AWS_ENDPOINT_URL"]
    assert (env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"]) == ("test", "test")
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "echo"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_FUNCTION_TIMEOUT"] == "3"
    context = first.payload["context"]
    assert context["function_name"] == "echo"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == ARN.format("echo")
    assert context["memory_limit_in_mb"] == 256
    assert context["aws_request_id"] == first.request_id
    assert context["log_group_name"] == "/aws/lambda/echo"
    assert "[$LATEST]" in context["log_stream_name"]
    assert 2000 < context["remaining_ms"] <= 3000


def test_functions_have_own_workers_and_environment_until_stop(tmp_path: Path) -> None:
    functions = [
        fn("a", "echo", environment={"GREETING": "from a"}),
        fn("b", "echo"),
    ]

    async def body(runtime: LambdaRuntime):
        return await asyncio.gather(runtime.invoke("a", {}), runtime.invoke("b", {}))

    a, b = run_runtime(tmp_path, functions, body)
    assert a.payload["env"]["GREETING"] == "from a"
    assert b.payload["env"]["GREETING"] is None
    assert a.payload["pid"] != b.payload["pid"]
    for pid in (a.payload["pid"], b.payload["pid"]):  # stop() ended the warm workers
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_names_and_arns_resolve(tmp_path: Path) -> None:
    async def body(runtime: LambdaRuntime):
        assert runtime.function_names() == ["echo"]
        assert runtime.arn("echo") == ARN.format("echo")
        for form in ("echo", "000000000000:function:echo", ARN.format("echo"), "echo:live"):
            assert runtime.resolve(form) == "echo", form
        assert runtime.resolve("other") is None
        assert runtime.resolve("arn:aws:sns:us-east-1:000000000000:echo") is None
        with pytest.raises(ResourceNotFoundError, match="Function not found"):
            await runtime.invoke("other", {})
        with pytest.raises(ResourceNotFoundError):
            runtime.invoke_async("other", {})

    run_runtime(tmp_path, [fn("echo", "echo")], body)


def test_handler_exception_gives_aws_error_shape(tmp_path: Path) -> None:
    functions = [fn("fail", "fail", environment={"COUNT_FILE": str(tmp_path / "count")})]

    async def body(runtime: LambdaRuntime):
        return await runtime.invoke("fail", {"why": "testing"})

    result = run_runtime(tmp_path, functions, body)
    assert not result.ok
    assert result.payload is None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "boom: testing"
    assert result.error["requestId"] == result.request_id
    trace = result.error["stackTrace"]
    assert isinstance(trace, list) and all(isinstance(frame, str) for frame in trace)
    assert any("fixtures.py" in frame and "in fail" in frame for frame in trace)
    log = log_path(tmp_path, "fail").read_text()
    assert "[ERROR] ValueError: boom: testing" in log


def test_runtime_errors_have_aws_error_types(tmp_path: Path) -> None:
    functions = [
        {"name": "missing-module", "handler": "tests.infra.local.lambda_runtime.nope.handler"},
        fn("missing-function", "no_such_handler"),
        fn("crash", "crash"),
        fn("unserializable", "unserializable"),
    ]

    async def body(runtime: LambdaRuntime):
        return {name: await runtime.invoke(name, {}) for name in runtime.function_names()}

    results = run_runtime(tmp_path, functions, body)
    assert results["missing-module"].error["errorType"] == "Runtime.ImportModuleError"
    assert "Unable to import module" in results["missing-module"].error["errorMessage"]
    assert results["missing-function"].error["errorType"] == "Runtime.HandlerNotFound"
    crash = results["crash"]
    assert crash.error == {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {crash.request_id} Error: Runtime exited with error: "
        "exit status 3",
    }
    assert results["unserializable"].error["errorType"] == "Runtime.MarshalError"


def test_timeout_kills_worker_and_others_keep_being_served(tmp_path: Path) -> None:
    functions = [fn("slow", "sleep", timeout=1), fn("echo", "echo")]
    pid_file = tmp_path / "slow.pid"

    async def body(runtime: LambdaRuntime):
        stuck = asyncio.create_task(
            runtime.invoke("slow", {"seconds": 30, "pidFile": str(pid_file)})
        )
        # While one worker is stuck, the same function and another function still answer.
        others = await asyncio.gather(
            runtime.invoke("slow", {"seconds": 0.05}),
            *(runtime.invoke("echo", {"i": i}) for i in range(3)),
        )
        timed_out = await stuck
        after = await runtime.invoke("slow", {"seconds": 0.01})
        return timed_out, others, after

    timed_out, others, after = run_runtime(tmp_path, functions, body)
    assert all(result.ok for result in others)
    assert others[0].payload["slept"] == 0.05
    assert not timed_out.ok
    assert timed_out.error == {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {timed_out.request_id} Error: Task timed out after "
        "1.00 seconds",
    }
    assert 1000 <= timed_out.duration_ms < 5000
    stuck_pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(stuck_pid, 0)
    assert after.ok and after.payload["pid"] != stuck_pid
    log = log_path(tmp_path, "slow").read_text()
    assert f"{timed_out.request_id} Task timed out after 1.00 seconds" in log
    assert f"REPORT RequestId: {timed_out.request_id}\tDuration: " in log


def test_async_failure_retried_twice_then_recorded(tmp_path: Path) -> None:
    count_file = tmp_path / "count"
    functions = [fn("fail", "fail", environment={"COUNT_FILE": str(count_file)})]
    event = {"why": "always", "room": "lobby"}

    async def body(runtime: LambdaRuntime):
        request_id = runtime.invoke_async(ARN.format("fail"), event, source="rule:test")
        await runtime.drain(20)
        return request_id

    request_id = run_runtime(tmp_path, functions, body, retry_delays=(0.05, 0.1))
    assert count_file.read_text().splitlines() == [request_id] * 3
    lines = failures_path(tmp_path, "fail").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 1
    record = records[0]
    assert record["version"] == "1.0"
    assert record["timestamp"].endswith("Z")
    assert record["requestContext"] == {
        "requestId": request_id,
        "functionArn": ARN.format("fail") + ":$LATEST",
        "condition": "RetriesExhausted",
        "approximateInvokeCount": 3,
    }
    assert record["requestPayload"] == event
    assert record["responseContext"] == {
        "statusCode": 200,
        "executedVersion": "$LATEST",
        "functionError": "Unhandled",
    }
    assert record["responsePayload"]["errorType"] == "ValueError"
    assert record["responsePayload"]["errorMessage"] == "boom: always"


def test_async_success_runs_once_and_records_nothing(tmp_path: Path) -> None:
    functions = [fn("interval", "interval")]
    out = tmp_path / "ran"

    async def body(runtime: LambdaRuntime):
        runtime.invoke_async("interval", {"seconds": 0, "file": str(out)})
        await runtime.drain(10)

    run_runtime(tmp_path, functions, body, retry_delays=(0.05, 0.05))
    assert len(out.read_text().splitlines()) == 1
    assert not failures_path(tmp_path, "interval").exists()


def test_reserved_concurrency_limits_parallel_workers(tmp_path: Path) -> None:
    functions = [fn("capped", "interval", reservedConcurrency=2)]
    out = tmp_path / "intervals"

    async def body(runtime: LambdaRuntime):
        results = await asyncio.gather(
            *(runtime.invoke("capped", {"seconds": 0.2, "file": str(out)}) for _ in range(6))
        )
        return results, runtime.pool("capped").worker_count

    results, workers = run_runtime(tmp_path, functions, body)
    assert all(result.ok for result in results)
    assert workers == 2
    runs = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(runs) == 6
    assert len({run["pid"] for run in runs}) == 2
    # Sweep over start (+1) and end (-1) events; ends sort first at equal times.
    events = sorted([(run["start"], 1) for run in runs] + [(run["end"], -1) for run in runs])
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    assert peak == 2  # two at a time, never three


def test_handler_output_goes_to_log_not_protocol(tmp_path: Path) -> None:
    async def body(runtime: LambdaRuntime):
        return [await runtime.invoke("chatty", {}) for _ in range(2)]

    first, second = run_runtime(tmp_path, [fn("chatty", "chatty")], body)
    assert first.ok and second.ok
    assert first.payload == second.payload == {"said": "hello"}
    log = log_path(tmp_path, "chatty").read_text()
    assert log.count("hello from the handler, not JSON {") == 2
    assert log.count("raw bytes on fd 1") == 2
    assert "[WARNING]\t" in log and f"\t{first.request_id}\ta warning with the request id" in log
    lines = log.splitlines()
    start = lines.index(f"START RequestId: {first.request_id} Version: $LATEST")
    assert lines[start + 1] == "hello from the handler, not JSON {"
    assert f"END RequestId: {first.request_id}" in lines
    reports = [line for line in lines if line.startswith("REPORT RequestId: ")]
    assert len(reports) == 2
    assert "Billed Duration: " in reports[0] and "Memory Size: 128 MB" in reports[0]
    assert "Max Memory Used: " in reports[0]
    assert "Init Duration: " in reports[0] and "Init Duration" not in reports[1]


class _FakeDynamoDB(BaseHTTPRequestHandler):
    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(dict(self.headers))
        body = json.dumps({"TableNames": ["from-the-local-stack"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-amz-json-1.0")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_boto3_in_handler_reaches_aws_endpoint_url(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeDynamoDB)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = dict(ENV_BASE, AWS_ENDPOINT_URL=f"http://127.0.0.1:{server.server_address[1]}")
    try:

        async def body(runtime: LambdaRuntime):
            return await runtime.invoke("tables", {})

        result = run_runtime(tmp_path, [fn("tables", "list_tables", timeout=30)], body, env)
    finally:
        server.shutdown()
        server.server_close()
    assert result.ok, result.error
    assert result.payload == ["from-the-local-stack"]
    headers = _FakeDynamoDB.seen[-1]
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.ListTables"
    assert "Credential=test/" in headers["Authorization"]
    assert "/us-east-1/dynamodb/aws4_request" in headers["Authorization"]


def test_measure_invoke_overhead(tmp_path: Path) -> None:
    """Report only (``-s`` shows it): warm async invoke overhead p50, and cold start."""

    async def body(runtime: LambdaRuntime):
        loop = asyncio.get_running_loop()
        cold_began = loop.time()
        cold = await runtime.invoke("noop", {})
        cold_ms = (loop.time() - cold_began) * 1000
        samples = []
        for _ in range(200):
            began = loop.time()
            runtime.invoke_async("noop", {"x": 1})
            await runtime.drain(5)
            samples.append((loop.time() - began) * 1000)
        return cold, cold_ms, sorted(samples)

    cold, cold_ms, samples = run_runtime(tmp_path, [fn("noop", "noop")], body)
    assert cold.ok and cold.cold and cold.init_ms is not None
    p50, p99 = samples[len(samples) // 2], samples[int(len(samples) * 0.99)]
    print(
        f"\nlambda-invoke: warm async p50 {p50:.3f} ms, p99 {p99:.3f} ms; "
        f"cold start {cold_ms:.1f} ms (Init Duration {cold.init_ms:.1f} ms)"
    )


def test_invocations_from_another_thread(tmp_path: Path) -> None:
    """The rules engine evaluates ``aws_lambda()`` off the loop; both invoke kinds work there."""
    out = tmp_path / "ran"
    functions = [fn("echo", "echo"), fn("interval", "interval")]

    async def body(runtime: LambdaRuntime):
        def off_loop():
            result = runtime.invoke_blocking("echo", {"from": "thread"}, timeout=30)
            runtime.invoke_async("interval", {"seconds": 0, "file": str(out)})
            return result

        result = await asyncio.to_thread(off_loop)
        await runtime.drain(10)
        with pytest.raises(RuntimeError, match="block"):
            runtime.invoke_blocking("echo", {})
        return result

    result = run_runtime(tmp_path, functions, body)
    assert result.ok and result.payload["event"] == {"from": "thread"}
    assert len(out.read_text().splitlines()) == 1


def test_cancelled_invocation_ends_its_worker(tmp_path: Path) -> None:
    """A caller that gives up (an HTTP client hanging up) must not leave a busy worker behind."""
    pid_file = tmp_path / "pid"

    async def body(runtime: LambdaRuntime):
        call = asyncio.create_task(
            runtime.invoke("slow", {"seconds": 30, "pidFile": str(pid_file)})
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while not pid_file.exists() and loop.time() < deadline:
            await asyncio.sleep(0.01)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        pid = int(pid_file.read_text())
        while not process_gone(pid) and loop.time() < deadline:
            await asyncio.sleep(0.01)
        gone = process_gone(pid)
        after = await runtime.invoke("slow", {"seconds": 0})
        return gone, runtime.pool("slow").worker_count, after

    gone, workers, after = run_runtime(tmp_path, [fn("slow", "sleep", timeout=30)], body)
    assert gone
    assert after.ok and after.cold
    assert workers == 1  # only the fresh worker
