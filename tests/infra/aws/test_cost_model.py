"""``iotchat cost``: the model against cases computed by hand from prices.json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from infra.aws.cost import Workload, estimate_all, load_prices

PRICES = load_prices()


def items(estimate) -> dict[str, float]:
    return {f"{i.service}: {i.what}": i.cost for i in estimate.items}


def test_the_price_table_says_when_and_where() -> None:
    assert PRICES["region"] == "us-east-1" and PRICES["date"]


def test_a_thousand_users_by_hand() -> None:
    # 1,000 users, 10 messages/day each, 20 rooms of 50, online 8 h/day, 2 sessions/day.
    w = Workload(users=1000, messages_per_user_per_day=10, rooms=20)
    ours, seed, apigw = estimate_all(w, PRICES)
    got = items(ours)
    # 1000 users x 480 min x 30 days = 14.4 M minutes x $0.08.
    assert got["IoT Core: connection minutes"] == pytest.approx(1.152)
    # 300k posts + 300k x 50 members x 1/3 online = 5 M deliveries + 60k sessions x (join + a
    # 5-unit history page) + 60k x 2 presence x 50 x 1/3 = 2 M: 7.66 M messages x $1.
    assert got["IoT Core: messages (5 KB units)"] == pytest.approx(7.66)
    # 300k x 5 + 60k x 4 + 120k x 3 = 2.1 M rules triggered x $0.15.
    assert got["IoT Core: rules triggered"] == pytest.approx(0.315)
    # 300k x 2 + 60k + 120k x 2 = 900k actions x $0.15.
    assert got["IoT Core: rule actions"] == pytest.approx(0.135)
    # 300k items x 1 WRU x 2 (table + index) + 60k x 5 = 900k WRU x $0.625.
    assert got["DynamoDB: write request units"] == pytest.approx(0.5625)
    # 3.65 M stored items x 500 bytes x 2 = 3.65e9 bytes = 3.3993 GiB x $0.25.
    assert got["DynamoDB: message storage (table + index)"] == pytest.approx(3.65e9 / 2**30 * 0.25)
    assert ours.total == pytest.approx(11.470, abs=0.001)
    # The seed design pays a Lambda on every message: 300k requests and 300k x 60 ms x 0.25 GB.
    assert seed.total - ours.total == pytest.approx(0.06 + 4500 * 0.0000166667, abs=1e-4)
    # API Gateway: 14.4 M connection minutes x $0.25, 5.42 M messages x $1, ...
    api = items(apigw)
    assert api["API Gateway: connection minutes"] == pytest.approx(3.6)
    assert api["API Gateway: messages (32 KB units)"] == pytest.approx(5.42)
    assert apigw.total == pytest.approx(11.256, abs=0.001)


def test_cognito_is_free_up_to_ten_thousand_users() -> None:
    small = items(estimate_all(Workload(users=10_000, messages_per_user_per_day=1), PRICES)[0])
    big = items(estimate_all(Workload(users=12_000, messages_per_user_per_day=1), PRICES)[0])
    assert small["Cognito: monthly active users"] == 0
    assert big["Cognito: monthly active users"] == pytest.approx(2000 * 0.0055)


def test_the_stream_adds_a_shard_and_puts() -> None:
    w = Workload(users=100, messages_per_user_per_day=10, stream=True)
    got = items(estimate_all(w, PRICES)[0])
    assert got["Kinesis: shard hours (1 shard)"] == pytest.approx(730 * 0.015)
    # 100 x 10 x 30 = 30k messages x 2 typing events = 60k PUT units.
    assert got["Kinesis: PUT payload units"] == pytest.approx(0.06 * 0.014)


@pytest.mark.parametrize("bad", [{"users": 0}, {"rooms": 0}, {"online_hours_per_day": 25}])
def test_nonsense_workloads_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Workload(**{"users": 10, "messages_per_user_per_day": 1, **bad})


def test_the_command_prints_json() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "cost",
            "--users",
            "1000",
            "--messages-per-user-per-day",
            "10",
            "--rooms",
            "20",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["prices"]["region"] == "us-east-1"
    assert [round(d["totalUsd"], 2) for d in body["designs"]] == [11.47, 11.61, 11.26]
