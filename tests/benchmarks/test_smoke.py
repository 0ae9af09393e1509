"""The benchmarks, run at a tiny size: they start, measure, report well-formed lines, clean up.

No timing threshold is asserted anywhere: this machine's speed is not under test here. The
figures only have to be sane (positive, ordered percentiles, ratio = value / baseline).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pytest

from benchmarks import _harness as h
from benchmarks import (
    gateway_connections,
    gateway_fanout,
    gateway_latency,
    lambda_invoke,
    rules_eval,
    rules_republish_latency,
)
from infra.local.gateway.codec import Connect, PacketReader
from tests.support import raw_mqtt

needs_mosquitto = pytest.mark.skipif(
    any(h.find_tool(t) is None for t in ("mosquitto", "mosquitto_pub", "mosquitto_sub")),
    reason="mosquitto/mosquitto-clients not installed (scripts/setup installs them)",
)

COMMON_KEYS = {"name", "metric", "unit", "value", "baseline", "ratio"}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes (its parent has not reaped it yet).
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


_children_before: set[int] = set()


@pytest.fixture(autouse=True)
def _remember_children() -> None:
    """Children that other tests left behind are not this file's business."""
    _children_before.clear()
    _children_before.update(h.process_tree(os.getpid()))


def _no_children_left() -> bool:
    """Every process the benchmark started (gateway, mosquitto, load clients) is gone."""
    return set(h.process_tree(os.getpid())) <= _children_before


def _check_ratio(line: dict[str, Any]) -> None:
    value, baseline, ratio = line["value"], line["baseline"], line["ratio"]
    assert isinstance(value, int | float) and math.isfinite(value)
    assert isinstance(baseline, int | float) and baseline > 0
    # Value and baseline are rounded for display, the ratio is computed before rounding.
    assert ratio == pytest.approx(value / baseline, rel=0.02, abs=0.01)


# --------------------------------------------------------------------------- harness


def test_mqtt_connect_is_what_the_gateway_codec_decodes() -> None:
    packet = raw_mqtt.connect_packet(
        "bench-1", raw_mqtt.V311, username="test", password="test", keep_alive=600
    )
    [decoded] = PacketReader(1 << 20).feed(packet)
    assert isinstance(decoded, Connect)
    assert (decoded.client_id, decoded.username, decoded.keep_alive) == ("bench-1", "test", 600)
    assert decoded.password == b"test"
    assert decoded.clean_start
    assert raw_mqtt.connack_ok(b"\x20\x02\x00\x00")
    assert not raw_mqtt.connack_ok(b"\x20\x02\x00\x05")


def test_percentile_interpolates() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert h.percentile(values, 0) == 1.0
    assert h.percentile(values, 50) == 3.0
    assert h.percentile(values, 100) == 5.0
    assert h.percentile(values, 90) == pytest.approx(4.6)


def test_payload_lines_publish_as_exact_payloads(tmp_path: Path) -> None:
    path = tmp_path / "p.txt"
    gateway_fanout.write_payload_file(path, 2500, 200)
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""  # every line, the last one included, ends in \n
    assert len(lines) - 1 == 2500
    assert {len(line) for line in lines[:-1]} == {200}
    assert b"\r" not in path.read_bytes()  # mosquitto_pub -l would keep a CR in the payload


def test_publishers_never_send_more_message_ids_than_fit_in_16_bits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert gateway_fanout.PUBLISHER_CHUNK < 65535  # mosquitto_pub -l quits early past a wrap
    monkeypatch.setattr(gateway_fanout, "PUBLISHER_CHUNK", 1000)
    files = gateway_fanout.write_payload_chunks(tmp_path, 2500, 200)
    assert [f.read_bytes().count(b"\n") for f in files] == [1000, 1000, 500]


@pytest.mark.timeout(60)
def test_gateway_process_is_stopped_even_when_the_benchmark_fails() -> None:
    with (
        pytest.raises(RuntimeError, match="boom"),
        h.temp_dir("smoke") as workdir,
        h.gateway(workdir) as gw,
    ):
        pid = gw.pid
        assert gw.port > 0 and Path(gw.extra["ca_file"]).exists()
        assert gw.rss_bytes() > 0
        raise RuntimeError("boom")
    assert not _alive(pid)
    assert not workdir.exists()


@pytest.mark.timeout(60)
def test_wss_sigv4_connects_against_the_gateway_alone() -> None:
    with h.temp_dir("smoke") as workdir, h.gateway(workdir) as gw:
        result = gateway_connections.wss_once(gw, count=20, workers=4)
    assert result["connects"] == 20 and result["failed"] == 0
    assert result["seconds"] > 0
    assert result["gateway_cpu_seconds"] >= 0
    assert _no_children_left()


# --------------------------------------------------------------------------- against mosquitto


@needs_mosquitto
@pytest.mark.timeout(120)
def test_fanout_reports_throughput_and_cpu_against_mosquitto() -> None:
    lines = gateway_fanout.measure(messages=2000, repetitions=1)
    assert _no_children_left()
    assert [(x["qos"], x["metric"]) for x in lines] == [
        (0, "throughput"),
        (0, "cpu_us_per_delivery"),
        (1, "throughput"),
        (1, "cpu_us_per_delivery"),
    ]
    for line in lines:
        assert line.keys() >= COMMON_KEYS
        assert line["name"] == "gateway-fanout"
        assert line["baseline_name"] == "mosquitto"
        assert (line["subscribers"], line["messages"], line["payload_bytes"]) == (10, 2000, 200)
        assert 0 < line["delivered_fraction"] <= 1
        assert 0 < line["baseline_delivered_fraction"] <= 1
        if line["metric"] == "throughput":
            assert line["value"] > 0
            _check_ratio(line)
        else:
            # 10 ms clock ticks: a tiny run may round the gateway's CPU down to zero.
            assert line["value"] >= 0 and line["baseline"] >= 0
            assert 0 <= line["kernel_cpu_share"] <= 1
            if line["baseline"] > 0:
                _check_ratio(line)


@needs_mosquitto
@pytest.mark.timeout(120)
def test_latency_reports_ordered_percentiles_against_mosquitto() -> None:
    lines = gateway_latency.measure(seconds=1)
    assert _no_children_left()
    assert [x["metric"] for x in lines] == ["p50", "p90", "p99", "max"]
    for line in lines:
        assert line.keys() >= COMMON_KEYS
        assert line["name"] == "gateway-latency" and line["unit"] == "ms"
        assert (line["qos"], line["subscribers"], line["rate_per_s"]) == (1, 10, 500)
        assert line["payload_bytes"] == 200
        assert line["value"] > 0 and line["baseline"] > 0
        assert line["delivered_fraction"] == 1.0 and line["baseline_delivered_fraction"] == 1.0
        # 500 messages minus the warm-up, to each of 10 subscribers
        assert line["samples_count"] == line["baseline_samples_count"] == 10 * (500 - 50)
        _check_ratio(line)
    values = [x["value"] for x in lines]
    baselines = [x["baseline"] for x in lines]
    assert values == sorted(values) and baselines == sorted(baselines)


@needs_mosquitto
@pytest.mark.timeout(120)
def test_connections_reports_memory_and_wss_rate() -> None:
    lines = gateway_connections.measure(idle_connections=300, wss_connects=30)
    assert _no_children_left()
    by_metric = {x["metric"]: x for x in lines}
    assert set(by_metric) == {"rss_mib", "rss_kib_per_connection", "wss_sigv4_connects_per_s"}
    for line in lines:
        assert line.keys() >= COMMON_KEYS
        assert line["name"] == "gateway-connections"
    rss = by_metric["rss_mib"]
    assert (
        rss["connections"] == 600
    )  # two batches of 300: the second batch's growth is per connection
    assert rss["value"] > 0 and rss["idle_rss_mib"] > 0
    assert rss["baseline"] > 0 and rss["baseline_idle_rss_mib"] > 0
    _check_ratio(rss)
    per_connection = by_metric["rss_kib_per_connection"]
    assert math.isfinite(per_connection["value"]) and math.isfinite(per_connection["baseline"])
    wss = by_metric["wss_sigv4_connects_per_s"]
    assert wss["connects"] == 30 and wss["value"] > 0
    assert wss["baseline"] is None and wss["ratio"] is None and wss["baseline_note"]


def test_rules_eval_reports_rate_against_plain_json() -> None:
    [line] = rules_eval.measure(seconds=0.3)
    assert set(line) >= COMMON_KEYS
    assert line["name"] == "rules-eval" and line["value"] > 0
    _check_ratio(line)


def test_rules_republish_latency_reports_ordered_percentiles() -> None:
    lines = rules_republish_latency.measure(seconds=0.3)
    assert [line["metric"] for line in lines] == ["p50", "p90", "p99", "max"]
    for line in lines:
        assert set(line) >= COMMON_KEYS
        assert line["delivered_fraction"] > 0 and line["baseline_delivered_fraction"] > 0
        _check_ratio(line)
    values = [line["value"] for line in lines]
    assert values == sorted(values)
    assert _no_children_left()


def test_lambda_invoke_reports_warm_async_and_cold() -> None:
    lines = lambda_invoke.measure(count=20, cold_starts=1)
    metrics = {line["metric"] for line in lines}
    assert {"request_response_p50", "event_to_handler_start_p50", "cold_start_p50"} <= metrics
    for line in lines:
        assert set(line) >= COMMON_KEYS
        assert line["value"] > 0
        _check_ratio(line)
    assert _no_children_left()


# --------------------------------------------------------------------------- issue 4: authz


def test_authz_reports_cached_and_uncached_decisions_against_a_dict_lookup() -> None:
    from benchmarks import authz

    lines = authz.measure(decisions=300, uncached_decisions=30, rounds=2)
    assert [line["metric"] for line in lines] == ["cached_decision_us", "uncached_decision_us"]
    for line in lines:
        assert set(line) >= COMMON_KEYS
        assert line["name"] == "authz" and line["value"] > 0
        _check_ratio(line)


@pytest.mark.timeout(60)
def test_sigv4_connect_uses_distinct_guest_identities_and_cleans_up() -> None:
    from benchmarks import sigv4_connect

    [line] = sigv4_connect.measure(connects=12, workers=3)
    assert set(line) >= COMMON_KEYS
    assert line["connects"] == 12 and line["identities"] == 12
    _check_ratio(line)
    assert _no_children_left()


@pytest.mark.timeout(60)
def test_sigv4_connect_guests_are_held_to_the_policy() -> None:
    """A guest may connect only as its own identity id: the benchmark's connects are checked."""
    import json

    from benchmarks import sigv4_connect

    with h.temp_dir("smoke-sigv4") as workdir, h.gateway(workdir) as gw:
        stack = json.loads((workdir / "gateway-state" / "stack.json").read_text())
        [guest] = sigv4_connect.guest_identities(stack, 1)
        assert sigv4_connect.connect_once(gw, [guest], workers=1)["connects"] == 1
        with pytest.raises(h.BenchmarkError, match="1 of 1 WSS connects failed"):
            sigv4_connect.connect_once(gw, [{**guest, "clientId": "someone-else"}], workers=1)
    assert _no_children_left()


# --------------------------------------------------------------------------- chat backend


@pytest.mark.timeout(90)
def test_store_latency_stores_every_message_and_times_it_against_delivery() -> None:
    from benchmarks import store_latency

    lines = store_latency.measure(seconds=1, warmup_seconds=0.25)
    assert _no_children_left()
    assert [line["metric"] for line in lines] == ["p50", "p95", "p99", "max"]
    for line in lines:
        assert set(line) >= COMMON_KEYS
        assert line["name"] == "store-latency" and line["unit"] == "ms"
        assert line["rate_per_s"] == 200 and line["publishers"] == 4
        assert line["messages_sent"] == 250  # 1.25 s at 200 messages/s, warm-up included
        # Every message stored exactly once, found by the reader and delivered to the room.
        assert line["messages_stored"] == 250 and line["stored_fraction"] == 1.0
        assert line["messages_seen_by_reader"] == line["messages_delivered"] == 250
        assert line["samples_count"] == line["baseline_samples_count"] == 200
        assert 0 <= line["value_lower_bound"] <= line["value"]
        assert line["value"] > 0
        _check_ratio(line)
    values = [line["value"] for line in lines]
    baselines = [line["baseline"] for line in lines]
    assert values == sorted(values) and baselines == sorted(baselines)
    [p99] = [line for line in lines if line["metric"] == "p99"]
    assert p99["target"] == "store p99 <= 50 ms" and isinstance(p99["target_met"], bool)


@pytest.mark.timeout(150)
def test_chat_throughput_ramps_and_reports_capacity_against_both_baselines() -> None:
    from benchmarks import chat_throughput

    lines = chat_throughput.tiny()
    assert _no_children_left()
    steps = [line for line in lines if line["metric"].endswith("-step")]
    # Both ramps ran; at 50 and 100 messages/s every message reached all 10 subscribers and,
    # through the rules, the table.
    assert [(s["metric"], s["offered_per_s"]) for s in steps] == [
        ("chat-step", 50),
        ("chat-step", 100),
        ("fanout-step", 50),
        ("fanout-step", 100),
    ]
    for step in steps:
        assert step["passed"] and step["delivered_to_slowest_subscriber"] == step["sent"]
    assert all(s["stored_within_1s"] == s["sent"] for s in steps if s["metric"] == "chat-step")
    [capacity] = [line for line in lines if line["metric"] == "capacity"]
    assert set(capacity) >= COMMON_KEYS
    assert capacity["value"] == 100 and capacity["fanout_capacity"] == 100
    _check_ratio(capacity)
    latency = [line for line in lines if line["metric"].endswith("at half capacity")]
    assert [line["metric"] for line in latency] == ["p50 at half capacity", "p99 at half capacity"]
    for line in latency:
        assert line["publish_to_stored"] > 0 and line["publish_to_delivered"] > 0


def test_history_scaling_page_check_refuses_a_page_in_the_wrong_order() -> None:
    from benchmarks import history_scaling

    newest = [f"m{i}" for i in range(60, 0, -1)]
    history_scaling._verify(60, newest, newest[:50], "cursor", "store")
    with pytest.raises(h.BenchmarkError, match="newest first"):
        history_scaling._verify(60, newest, newest[:50][::-1], "cursor", "store")
    with pytest.raises(h.BenchmarkError, match="cursor"):
        history_scaling._verify(60, newest, newest[:50], None, "store")


@pytest.mark.timeout(90)
def test_history_scaling_seeds_every_room_and_checks_a_page_per_size() -> None:
    from benchmarks import history_scaling

    lines = history_scaling.measure(sizes=(20, 120), rounds=1, per_round=3, warmup=1)
    assert _no_children_left()
    seeds = [line for line in lines if line["metric"] == "seed_rate"]
    assert [(x["room_messages"], x["items_stored"]) for x in seeds] == [(20, 20), (120, 120)]
    assert all(x["value"] > 0 for x in seeds)
    pages = [line for line in lines if line["metric"] in ("p50", "p99")]
    assert sorted((x["path"], x["room_messages"], x["metric"]) for x in pages) == [
        (path, size, metric)
        for path in ("e2e", "store")
        for size in (20, 120)
        for metric in ("p50", "p99")
    ]
    for line in pages:
        assert set(line) >= COMMON_KEYS and line["name"] == "history-scaling"
        assert line["page_verified"] and line["samples_count"] == 3
        # A page is the newest 50 (all 20 in the seed study's room).
        assert line["page_messages"] == min(line["room_messages"], 50)
        assert line["value"] > 0
        _check_ratio(line)
    summaries = [line for line in lines if line["metric"] == "p99_largest_over_smallest"]
    assert [x["path"] for x in summaries] == ["store", "e2e"]
    for line in summaries:
        assert line["room_messages"] == 120 and line["target"] == "ratio <= 2"
        assert isinstance(line["target_met"], bool)
        _check_ratio(line)


# --------------------------------------------------------------------------- bench all, report


def _fake_results(fanout_value: float = 150_000.0) -> dict[str, Any]:
    """A small results file in the shape ``iotchat bench all`` writes."""
    history = [
        {
            "name": "history-scaling",
            "metric": metric,
            "unit": "ms",
            "path": "store",
            "room_messages": size,
            "value": value,
            "baseline": base,
            "baseline_name": "the 20-message room, same path and run",
            "ratio": round(value / base, 3),
        }
        for metric, base in (("p50", 5.0), ("p99", 20.0))
        for size, value in ((20, base), (1000, base * 1.5))
    ]
    return {
        "date": "2026-01-02T03:04:05Z",
        "mode": "quick",
        "total_seconds": 12.5,
        "machine": {
            "cpu_model": "Test CPU 3000",
            "cpu_count": 2,
            "memory_bytes": 4 * 2**30,
            "kernel": "Linux 6.0",
            "python": "3.11.0",
            "loadavg_1m_start": 0.5,
            "loadavg_1m_end": 0.7,
        },
        "benchmarks": [
            {
                "name": "gateway-fanout",
                "status": "ok",
                "seconds": 30.0,
                "lines": [
                    {
                        "name": "gateway-fanout",
                        "metric": "throughput",
                        "unit": "deliveries/s",
                        "qos": 0,
                        "value": fanout_value,
                        "baseline": 100_000.0,
                        "baseline_name": "mosquitto",
                        "ratio": fanout_value / 100_000.0,
                    },
                    {
                        "name": "gateway-fanout",
                        "metric": "throughput",
                        "unit": "deliveries/s",
                        "qos": 1,
                        "value": 50_000.0,
                        "baseline": 40_000.0,
                        "baseline_name": "mosquitto",
                        "ratio": 1.25,
                    },
                ],
            },
            {"name": "history-scaling", "status": "ok", "seconds": 20.0, "lines": history},
            {
                "name": "reliability",
                "status": "ok",
                "seconds": 60.0,
                "lines": [
                    {"benchmark": "reliability", "scenario": "soak", "sent": 400, "stored": 400},
                    {"benchmark": "reliability", "scenario": "throttle", "burst": 300},
                ],
            },
        ],
    }


def test_report_renders_the_section_and_one_plot_per_benchmark(tmp_path: Path) -> None:
    from benchmarks import report

    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nHand-written analysis.\n")
    out_dir = tmp_path / "performance"
    made = report.generate(_fake_results(), out_dir, doc)

    assert set(made) == {"gateway-fanout", "history-scaling", "reliability"}
    for path in made.values():
        data = path.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 5_000
    text = doc.read_text()
    assert text.startswith("# Performance\n")
    assert text.count(report.START) == 1 and text.count(report.END) == 1
    assert text.index(report.END) < text.index("Hand-written analysis.")
    assert "Test CPU 3000, 2 CPUs, 4.0 GiB memory" in text and "2026-01-02T03:04:05Z" in text
    assert "| gateway-fanout | throughput, qos 0 | 150,000 deliveries/s | 100,000" in text
    assert "| gateway-fanout | throughput, qos 1 | 50,000 deliveries/s | 40,000" in text
    # history-scaling's headline is the largest room against the smallest one.
    assert "| history-scaling | p99, 1,000 msgs | 30.00 ms | 20.00 ms | 1.50 |" in text
    assert "**soak**" in text and "sent 400, stored 400" in text
    assert "![gateway-fanout: measured vs baseline](performance/gateway-fanout.png)" in text

    # Regenerating replaces the section (no second copy); a benchmark that failed this time
    # loses its old plot rather than showing it as current.
    again = _fake_results(fanout_value=90_000.0)
    again["benchmarks"][1] = {
        "name": "history-scaling",
        "status": "failed",
        "seconds": 1.0,
        "lines": [],
        "error": "BenchmarkError: boom",
    }
    report.generate(again, out_dir, doc)
    text = doc.read_text()
    assert text.count(report.START) == 1 and "Hand-written analysis." in text
    assert "90,000 deliveries/s" in text and "150,000 deliveries/s" not in text
    assert "| history-scaling | failed: BenchmarkError: boom |" in text
    assert not (out_dir / "history-scaling.png").exists()
    assert (out_dir / "gateway-fanout.png").exists()


def test_bench_all_runs_every_benchmark_and_keeps_going_after_a_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``iotchat bench all --quick`` through the CLI, with a tiny registry of fake benchmarks:
    a failure and a hang are reported and the others still run; the budget is enforced."""
    import signal
    import sys

    from typer.testing import CliRunner

    import benchmarks
    from benchmarks import report
    from cli.main import app

    modules = tmp_path / "modules"
    modules.mkdir()
    (modules / "fake_bench_broken.py").write_text(
        "def run(quick):\n    raise RuntimeError('the broker did not start')\n"
    )
    (modules / "fake_bench_ok.py").write_text(
        "def run(quick):\n"
        "    return [{'name': 'ok', 'metric': 'speed', 'unit': '1/s', 'value': 20.0,\n"
        "             'baseline': 10.0, 'baseline_name': 'floor', 'ratio': 2.0,\n"
        "             'quick': quick}]\n"
    )
    # A benchmark stuck for good (a deadlocked client, say): stopped when the budget runs out.
    (modules / "fake_bench_hang.py").write_text(
        "import threading\n\ndef run(quick):\n    threading.Event().wait()\n"
    )
    monkeypatch.syspath_prepend(str(modules))
    registry = {
        "broken": "fake_bench_broken",  # first: a failure must not stop the others
        "ok": "fake_bench_ok",
        "absent": "fake_bench_absent",
        "hang": "fake_bench_hang",
        "late": "fake_bench_ok",
    }
    monkeypatch.setattr(benchmarks, "BENCHMARKS", registry)
    monkeypatch.setattr(benchmarks, "QUICK_BUDGET_SECONDS", 3.0)
    monkeypatch.setattr(report, "OUT_DIR", tmp_path / "performance")
    monkeypatch.setattr(report, "DOC", tmp_path / "performance.md")
    previous = signal.getsignal(signal.SIGTERM)
    try:
        result = CliRunner().invoke(app, ["bench", "all", "--quick"])
    finally:
        signal.signal(signal.SIGTERM, previous)
        for name in ("fake_bench_broken", "fake_bench_ok", "fake_bench_hang"):
            sys.modules.pop(name, None)

    assert result.exit_code == 1, result.output  # one benchmark failed
    results = report.load(tmp_path / "performance" / "results.json")
    assert results["mode"] == "quick" and results["machine"]["cpu_count"] >= 1
    by_name = {b["name"]: b for b in results["benchmarks"]}
    assert list(by_name) == ["broken", "ok", "absent", "hang", "late"]
    assert by_name["broken"]["status"] == "failed"
    assert "the broker did not start" in by_name["broken"]["error"]
    assert by_name["ok"]["status"] == "ok" and by_name["ok"]["lines"][0]["quick"] is True
    assert by_name["absent"]["status"] == "skipped"
    assert by_name["hang"]["status"] == "failed" and "budget" in by_name["hang"]["error"]
    assert by_name["late"]["status"] == "skipped" and "budget" in by_name["late"]["note"]
    assert results["total_seconds"] < 30
    assert '"metric": "speed"' in result.output  # the lines are still printed as JSON
    assert (tmp_path / "performance" / "ok.png").exists()
    assert (
        "| ok | speed | 20.00 1/s | 10.00 1/s | 2.00 | floor |"
        in (tmp_path / "performance.md").read_text()
    )
