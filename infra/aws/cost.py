"""Monthly AWS cost of the chat, itemised: this design, the seed design, and API Gateway WebSockets.

Prices come from ``prices.json`` (its date and region are part of every estimate). The model
counts what each design makes AWS meter for one month of a workload; the per-event counts are
the design's own (which rules a message triggers, which actions run, which Lambdas run) and are
spelled out next to each line. docs/cost.md explains the assumptions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PRICES_PATH = Path(__file__).with_name("prices.json")
DAYS_PER_MONTH = 30
HOURS_PER_MONTH = 730
GIB = 1024**3


def load_prices(path: Path = PRICES_PATH) -> dict[str, Any]:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class Workload:
    users: int
    messages_per_user_per_day: float
    rooms: int | None = None  # default: one room per 50 users
    retention_days: int = 365
    online_hours_per_day: float = 8.0
    sessions_per_user_per_day: float = 2.0
    message_bytes: int = 300  # topic + JSON payload of one chat message
    stream: bool = False  # the Kinesis path for typing and telemetry (one shard)
    typing_events_per_message: float = 2.0  # only with stream

    def __post_init__(self) -> None:
        if self.users < 1 or self.messages_per_user_per_day < 0:
            raise ValueError("users must be >= 1 and messages per user per day >= 0")
        if self.rooms is not None and self.rooms < 1:
            raise ValueError("rooms must be >= 1")
        if not 0 <= self.online_hours_per_day <= 24 or self.retention_days < 0:
            raise ValueError("online hours must be 0-24 and retention days >= 0")

    @property
    def room_count(self) -> int:
        return self.rooms if self.rooms is not None else max(1, math.ceil(self.users / 50))

    @property
    def members_per_room(self) -> float:
        return self.users / self.room_count

    @property
    def online_fraction(self) -> float:
        return self.online_hours_per_day / 24

    @property
    def messages(self) -> float:
        """Chat messages posted in a month."""
        return self.users * self.messages_per_user_per_day * DAYS_PER_MONTH

    @property
    def deliveries(self) -> float:
        """Copies delivered: every message to each room member who is online."""
        return self.messages * self.members_per_room * self.online_fraction

    @property
    def sessions(self) -> float:
        return self.users * self.sessions_per_user_per_day * DAYS_PER_MONTH

    @property
    def connection_minutes(self) -> float:
        return self.users * self.online_hours_per_day * 60 * DAYS_PER_MONTH

    @property
    def stored_items(self) -> float:
        """Messages held at steady state: ``retention_days`` worth."""
        return self.users * self.messages_per_user_per_day * self.retention_days


@dataclass(frozen=True)
class Item:
    service: str
    what: str
    quantity: float
    unit: str
    unit_price: float

    @property
    def cost(self) -> float:
        return self.quantity * self.unit_price


@dataclass
class Estimate:
    design: str
    items: list[Item] = field(default_factory=list)

    @property
    def total(self) -> float:
        return sum(item.cost for item in self.items)

    def by_service(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for item in self.items:
            out[item.service] = out.get(item.service, 0.0) + item.cost
        return out

    def add(self, service: str, what: str, quantity: float, unit: str, price: float) -> None:
        self.items.append(Item(service, what, quantity, unit, price))


def _units(size: int, unit: int) -> int:
    return max(1, math.ceil(size / unit))


# Sizes the model assumes besides the message itself.
STORED_ITEM_OVERHEAD = 200  # key attributes conv, mid, tsid, expiresAt
HISTORY_PAGE_BYTES = 50 * 500  # a join's newest-50 page
PRESENCE_BYTES = 200
STATE_WRITES_PER_SESSION = 3  # presence item, member online flag on connect and on disconnect
COMMANDS_MS, PRESENCE_MS, SEED_STORE_MS = 50, 30, 60
LAMBDA_GB = 0.25


def _common(estimate: Estimate, w: Workload, p: dict[str, Any]) -> None:
    """What every design pays the same way: message storage and Cognito users."""
    ddb, cognito = p["dynamodb"], p["cognito"]
    item_bytes = w.message_bytes + STORED_ITEM_OVERHEAD
    # The byTime local index holds a second copy of every item.
    gib = w.stored_items * item_bytes * 2 / GIB
    estimate.add(
        "DynamoDB", "message storage (table + index)", gib, "GiB-month", ddb["storage_gb_month"]
    )
    estimate.add("DynamoDB", "point-in-time recovery", gib, "GiB-month", ddb["pitr_gb_month"])
    paying = max(0, w.users - cognito["free_monthly_active_users"])
    estimate.add(
        "Cognito", "monthly active users", paying, "MAU", cognito["per_monthly_active_user"]
    )


def _dynamodb_requests(
    estimate: Estimate, writes: float, reads: float, ddb: dict[str, Any]
) -> None:
    """On-demand request units, in millions."""
    for what, units, price in (
        ("write request units", writes, ddb["write_request_units_per_million"]),
        ("read request units", reads, ddb["read_request_units_per_million"]),
    ):
        estimate.add("DynamoDB", what, units * 1e-6, "million", price)


def _iot_chat(
    estimate: Estimate, w: Workload, p: dict[str, Any], *, lambda_per_message: bool
) -> None:
    iot, lam, ddb = p["iot"], p["lambda"], p["dynamodb"]
    per_m = 1e-6
    msg_units = _units(w.message_bytes, iot["message_unit_bytes"])
    page_units = _units(HISTORY_PAGE_BYTES, iot["message_unit_bytes"])
    estimate.add(
        "IoT Core",
        "connection minutes",
        w.connection_minutes * per_m,
        "million minutes",
        iot["connectivity_per_million_minutes"],
    )
    # Inbound chat/out publishes, outbound room deliveries, and per session: the join, its
    # history page, and two presence updates (online, offline) delivered to online members.
    presence_copies = w.sessions * 2 * w.members_per_room * w.online_fraction
    messages = (
        w.messages * msg_units
        + w.deliveries * msg_units
        + w.sessions * (1 + page_units)
        + presence_copies
    )
    estimate.add(
        "IoT Core",
        "messages (5 KB units)",
        messages * per_m,
        "million",
        iot["messages_per_million"],
    )
    # Rules triggered (topic filter matched): a room message meets the 4 chat/out rules (room
    # message, commands, queries, invalid), and its republished copy the store rule; a join
    # the 4 chat/out rules; each lifecycle event the presence rule; each presence update the
    # room-events rule and, republished, the store rule.
    triggered = w.messages * 5 + w.sessions * 4 + w.sessions * 2 * (1 + 2)
    # Actions: room message -> republish + store; join -> commands Lambda; lifecycle ->
    # presence Lambda; presence update -> republish.
    actions = w.messages * 2 + w.sessions + w.sessions * 2 * 2
    estimate.add(
        "IoT Core",
        "rules triggered",
        triggered * per_m,
        "million",
        iot["rules_triggered_per_million"],
    )
    estimate.add(
        "IoT Core", "rule actions", actions * per_m, "million", iot["actions_executed_per_million"]
    )
    invocations = w.sessions * 3  # a join (commands) and two lifecycle events (presence)
    gb_seconds = w.sessions * (COMMANDS_MS + 2 * PRESENCE_MS) / 1000 * LAMBDA_GB
    if lambda_per_message:
        invocations += w.messages
        gb_seconds += w.messages * SEED_STORE_MS / 1000 * LAMBDA_GB
    estimate.add("Lambda", "requests", invocations * per_m, "million", lam["requests_per_million"])
    estimate.add("Lambda", "duration", gb_seconds, "GB-second", lam["gb_second"])
    item_bytes = w.message_bytes + STORED_ITEM_OVERHEAD
    # Each message written once to the table and once to its local index.
    writes = w.messages * _units(item_bytes, ddb["write_unit_bytes"]) * 2
    writes += w.sessions * (2 + STATE_WRITES_PER_SESSION)  # join: member + client items
    reads = w.sessions * _units(HISTORY_PAGE_BYTES, ddb["read_unit_bytes"])  # strongly consistent
    _dynamodb_requests(estimate, writes, reads, ddb)
    if w.stream:
        kinesis = p["kinesis"]
        events = w.messages * w.typing_events_per_message
        estimate.add(
            "Kinesis", "shard hours (1 shard)", HOURS_PER_MONTH, "shard-hour", kinesis["shard_hour"]
        )
        estimate.add(
            "Kinesis",
            "PUT payload units",
            events * per_m,
            "million",
            kinesis["put_payload_units_per_million"],
        )
        estimate.add(
            "IoT Core",
            "stream messages + rule",
            events * per_m,
            "million",
            iot["messages_per_million"]
            + iot["rules_triggered_per_million"]
            + iot["actions_executed_per_million"],
        )
    _common(estimate, w, p)


def this_design(w: Workload, p: dict[str, Any]) -> Estimate:
    estimate = Estimate("iotchat (rules store messages; Lambdas only for commands and presence)")
    _iot_chat(estimate, w, p, lambda_per_message=False)
    return estimate


def seed_design(w: Workload, p: dict[str, Any]) -> Estimate:
    estimate = Estimate("seed design (a Lambda invoked on every message)")
    _iot_chat(estimate, w, p, lambda_per_message=True)
    return estimate


# API Gateway WebSocket: a Lambda per inbound message looks up the room's connections and calls
# PostToConnection for each; its duration grows with the audience.
APIGW_BASE_MS, APIGW_PER_RECIPIENT_MS = 20, 2
CONNECTION_ITEM_BYTES = 100


def apigateway_design(w: Workload, p: dict[str, Any]) -> Estimate:
    api, lam, ddb = p["apigateway_websocket"], p["lambda"], p["dynamodb"]
    per_m = 1e-6
    estimate = Estimate("API Gateway WebSocket + Lambda + DynamoDB")
    units = _units(w.message_bytes, api["message_unit_bytes"])
    estimate.add(
        "API Gateway",
        "connection minutes",
        w.connection_minutes * per_m,
        "million minutes",
        api["connection_minutes_per_million"],
    )
    messages = (w.messages + w.deliveries) * units + w.sessions * 2  # + join and its history
    estimate.add(
        "API Gateway",
        "messages (32 KB units)",
        messages * per_m,
        "million",
        api["messages_per_million"],
    )
    online = w.members_per_room * w.online_fraction
    invocations = w.messages + w.sessions * 3  # sendMessage; $connect, $disconnect, join
    gb_seconds = (
        w.messages * (APIGW_BASE_MS + APIGW_PER_RECIPIENT_MS * online) / 1000 * LAMBDA_GB
        + w.sessions * 3 * PRESENCE_MS / 1000 * LAMBDA_GB
    )
    estimate.add("Lambda", "requests", invocations * per_m, "million", lam["requests_per_million"])
    estimate.add("Lambda", "duration", gb_seconds, "GB-second", lam["gb_second"])
    item_bytes = w.message_bytes + STORED_ITEM_OVERHEAD
    writes = w.messages * _units(item_bytes, ddb["write_unit_bytes"]) * 2 + w.sessions * 2
    connection_reads = (
        w.messages * _units(int(online * CONNECTION_ITEM_BYTES), ddb["read_unit_bytes"]) * 0.5
    )
    reads = connection_reads + w.sessions * _units(HISTORY_PAGE_BYTES, ddb["read_unit_bytes"])
    _dynamodb_requests(estimate, writes, reads, ddb)
    _common(estimate, w, p)
    return estimate


def estimate_all(w: Workload, prices: dict[str, Any] | None = None) -> list[Estimate]:
    p = prices or load_prices()
    return [this_design(w, p), seed_design(w, p), apigateway_design(w, p)]


def to_json(w: Workload, estimates: list[Estimate], prices: dict[str, Any]) -> dict[str, Any]:
    return {
        "prices": {"region": prices["region"], "date": prices["date"]},
        "workload": {
            "users": w.users,
            "messagesPerUserPerDay": w.messages_per_user_per_day,
            "rooms": w.room_count,
            "retentionDays": w.retention_days,
            "onlineHoursPerDay": w.online_hours_per_day,
            "messagesPerMonth": w.messages,
            "deliveriesPerMonth": w.deliveries,
        },
        "designs": [
            {
                "design": e.design,
                "totalUsd": round(e.total, 2),
                "byService": {k: round(v, 2) for k, v in e.by_service().items()},
                "items": [
                    {
                        "service": i.service,
                        "what": i.what,
                        "quantity": i.quantity,
                        "unit": i.unit,
                        "unitPrice": i.unit_price,
                        "usd": round(i.cost, 4),
                    }
                    for i in e.items
                ],
            }
            for e in estimates
        ],
    }
