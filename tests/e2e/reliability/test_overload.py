"""Clients that misbehave under load: one that stops reading, one that publishes too fast."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from benchmarks.reliability import slow_consumer, throttle

pytestmark = pytest.mark.timeout(150)

QUEUED_BOUND = 1000  # Limits.max_queued_messages


def test_a_consumer_that_stops_reading_cannot_grow_the_gateway(tmp_path: Path, report: Any) -> None:
    payload = 16384
    counts = report(slow_consumer(tmp_path, messages=3000, payload_bytes=payload))
    assert counts["gatewayHealthy"]
    # ~98 MB offered to two clients that read nothing; the stack process grows by about one
    # bounded queue (1,000 x 16 KiB), far from what was offered.
    assert counts["offeredBytesPerConsumer"] >= 3000 * payload
    assert counts["rssGrowthBytes"] < QUEUED_BOUND * payload + 24 * 1024 * 1024
    assert counts["growthShareOfOffered"] < 0.3


def test_a_client_over_100_publishes_per_second_is_throttled_as_aws_does(
    tmp_path: Path, report: Any
) -> None:
    counts = report(throttle(tmp_path, burst=300))
    # MQTT 5: the excess is refused one by one with PUBACK 0x97 (quota exceeded).
    assert counts["mqtt5Refused"] > 0 and counts["mqtt5RefusedCodes"] == ["0x97"]
    assert 100 <= counts["mqtt5Accepted"] <= 100 + 100 * counts["mqtt5BurstSeconds"] + 5
    # MQTT 3.1.1 has no way to refuse one message: the connection is closed.
    assert counts["mqtt311Disconnected"]
    assert counts["mqtt311Accepted"] < 300
