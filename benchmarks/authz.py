"""authz: what one authorization decision costs the gateway and the API doors, cached and not.

Every PUBLISH, SUBSCRIBE and delivery (Receive) asks :class:`PolicyAuthorizer`; with the
decision cached that must stay a few microseconds (goal <= 5 µs), or policy enforcement
would show in the fan-out figures. The uncached figure is what the first message after a
policy or attachment change costs (``invalidate()`` before every decision). The baseline is
the floor any cache can reach: one dict lookup of a precomputed decision, in the same loop.
The IAM figure is the same question at the API endpoint and for rule actions: the Lambda role's
DynamoDB and Kinesis calls decided by :class:`IamAuthorizer` (goal <= 2 µs cached).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from infra.local.gateway.policy_authorizer import AMR, SUB, PolicyAuthorizer
from infra.local.iam import IamAuthorizer, Roles
from infra.local.iam.sessions import role_principal
from infra.local.identity import Principal

from . import _harness as h

NAME = "authz"
REGION, ACCOUNT = "us-east-1", "000000000000"
ROOM = "chat/pub/lobby"


def guest() -> Principal:
    identity_id = f"{REGION}:{uuid.uuid4()}"
    return Principal("cognito", identity_id, ((SUB, identity_id), (AMR, "unauthenticated")))


def _checks(authorizer: PolicyAuthorizer, principal: Principal) -> list[Callable[[], bool]]:
    """The three decisions a chat message needs: publish, subscribe to a room, receive."""
    client_id = principal.identifier
    return [
        lambda: authorizer.can_publish(principal, client_id, "chat/out", False),
        lambda: authorizer.can_subscribe(principal, client_id, ROOM),
        lambda: authorizer.can_receive(principal, client_id, ROOM),
    ]


def _lookup(table: dict[tuple[str, str], bool], key: tuple[str, str]) -> Callable[[], bool]:
    """The floor a cached decision is compared with: one dictionary lookup per call."""
    return lambda: table[key]


def _us_per_call(calls: Sequence[Callable[[], Any]], decisions: int, rounds: int) -> float:
    """Median over ``rounds`` of the time per call, cycling through ``calls``."""
    per_round = max(decisions // len(calls), 1)
    samples = []
    for _ in range(rounds):
        started = time.perf_counter_ns()
        for _ in range(per_round):
            for call in calls:
                call()
        samples.append((time.perf_counter_ns() - started) / (per_round * len(calls)) / 1000)
    return h.median(samples)


def measure(*, decisions: int, uncached_decisions: int, rounds: int = 5) -> list[dict[str, Any]]:
    authorizer = PolicyAuthorizer(region=REGION, account=ACCOUNT)
    principal = guest()
    checks = _checks(authorizer, principal)
    if not all(check() for check in checks):  # also warms the cache
        raise h.BenchmarkError("the guest role does not allow the benchmarked chat actions")
    precomputed = {
        ("publish", "chat/out"): True,
        ("subscribe", ROOM): True,
        ("receive", ROOM): True,
    }
    keys = list(precomputed)
    floor = [_lookup(precomputed, k) for k in keys]

    cached = _us_per_call(checks, decisions, rounds)
    baseline = _us_per_call(floor, decisions, rounds)

    def uncached_call(check: Callable[[], bool]) -> Callable[[], bool]:
        def call() -> bool:
            authorizer.invalidate()
            return check()

        return call

    uncached = _us_per_call([uncached_call(c) for c in checks], uncached_decisions, rounds)
    checks[0]()  # cache it again after the last invalidate()
    hits_before = authorizer.evaluator.hits
    checks[0]()
    if authorizer.evaluator.hits != hits_before + 1:
        raise h.BenchmarkError("the cached path did not hit the decision cache")

    common = {
        "name": NAME,
        "unit": "µs/decision",
        "principal": "cognito guest (guest role)",
        "actions": "iot:Publish chat/out, iot:Subscribe + iot:Receive chat/pub/lobby",
        "rounds": rounds,
        "baseline": round(baseline, 4),
        "baseline_name": "dict lookup of a precomputed decision",
    }
    return [
        {
            **common,
            "metric": "cached_decision_us",
            "decisions": max(decisions // 3, 1) * 3,
            "value": round(cached, 4),
            "ratio": h.ratio(cached, baseline),
            "target": "<= 5 µs per decision",
        },
        {
            **common,
            "metric": "uncached_decision_us",
            "decisions": max(uncached_decisions // 3, 1) * 3,
            "value": round(uncached, 4),
            "ratio": h.ratio(uncached, baseline),
            "note": "invalidate() before every decision: policy sets resolved and evaluated",
        },
    ]


def measure_iam(*, decisions: int, rounds: int = 5) -> dict[str, Any]:
    """Cached IAM decisions for the Lambda role: what each of its API calls costs the door."""
    roles = Roles(region=REGION, account=ACCOUNT, stack="iotchat")
    iam = IamAuthorizer(roles)
    principal = role_principal(roles.by_file("backend-lambda"), "commands")
    table = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/iotchat-messages"
    requests = [
        ("dynamodb:Query", table + "/index/byTime"),
        ("dynamodb:PutItem", f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/iotchat-state"),
        ("kinesis:GetRecords", f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/iotchat-stream"),
    ]

    def check(action: str, resource: str) -> Callable[[], None]:
        return lambda: iam.check(principal, action, resource)

    checks = [check(action, resource) for action, resource in requests]
    for call in checks:
        call()  # allowed (AccessDenied would end the benchmark) and now cached
    precomputed = {request: True for request in requests}
    cached = _us_per_call(checks, decisions, rounds)
    baseline = _us_per_call([_lookup(precomputed, r) for r in requests], decisions, rounds)
    return {
        "name": NAME,
        "unit": "µs/decision",
        "principal": "the Lambda role (role session)",
        "actions": "dynamodb:Query index, dynamodb:PutItem, kinesis:GetRecords",
        "rounds": rounds,
        "baseline": round(baseline, 4),
        "baseline_name": "dict lookup of a precomputed decision",
        "metric": "cached_iam_decision_us",
        "decisions": max(decisions // 3, 1) * 3,
        "value": round(cached, 4),
        "ratio": h.ratio(cached, baseline),
        "target": "<= 2 µs per decision",
    }


def run(quick: bool = False) -> list[dict[str, Any]]:
    decisions, uncached = (30_000, 3_000) if quick else (300_000, 30_000)
    return [
        *measure(decisions=decisions, uncached_decisions=uncached),
        measure_iam(decisions=decisions),
    ]
