"""The manifest refuses what AWS's CreateFunction would refuse, naming the function and field."""

from __future__ import annotations

import json
import math

import pytest

from lambdas.manifest import MANIFEST_PATH, FunctionSpec, Manifest, ManifestError


def test_project_manifest_loads() -> None:
    manifest = Manifest.load(MANIFEST_PATH)
    assert isinstance(json.loads(MANIFEST_PATH.read_text())["functions"], list)
    assert len(manifest.names()) == len(set(manifest.names()))


def test_defaults_are_aws_defaults() -> None:
    spec = FunctionSpec.from_dict({"name": "f", "handler": "lambdas.x.handler"})
    assert (spec.timeout, spec.memory_size, spec.reserved_concurrency) == (3, 128, None)
    assert (spec.handler_module, spec.handler_function) == ("lambdas.x", "handler")


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"handler": "a.b"}, "name"),
        ({"name": "bad name", "handler": "a.b"}, "name"),
        ({"name": "f", "handler": "nodot"}, "handler"),
        ({"name": "f", "handler": "a.b", "timeout": 0}, "timeout"),
        ({"name": "f", "handler": "a.b", "timeout": 901}, "timeout"),
        ({"name": "f", "handler": "a.b", "memorySize": 64}, "memorySize"),
        ({"name": "f", "handler": "a.b", "reservedConcurrency": 0}, "reservedConcurrency"),
        ({"name": "f", "handler": "a.b", "environment": {"X": 1}}, "environment"),
        ({"name": "f", "handler": "a.b", "environment": {"AWS_REGION": "x"}}, "AWS_REGION"),
        ({"name": "f", "handler": "a.b", "timout": 3}, "timout"),
    ],
)
def test_invalid_entries_are_refused(entry: dict, problem: str) -> None:
    with pytest.raises(ManifestError, match=problem):
        Manifest.from_dict({"functions": [entry]})


def test_duplicate_names_are_refused() -> None:
    entry = {"name": "f", "handler": "a.b"}
    with pytest.raises(ManifestError, match="declared twice"):
        Manifest.from_dict({"functions": [entry, entry]})


# The busiest minute of a day holds this share of its sessions (everyone's morning reconnect),
# and a function should cope with bursts this many times that minute's average.
PEAK_MINUTE_SHARE = 0.01
HEADROOM = 4


def test_concurrency_is_sized_from_the_cost_models_largest_workload() -> None:
    """Little's law on docs/cost.md's 100,000-user workload: at most rate x duration
    invocations run at once. Each session costs one commands invocation and two presence
    ones (infra/aws/cost.py); AWS reserves none of it unless deploy --reserve-concurrency."""
    from infra.aws.cost import COMMANDS_MS, PRESENCE_MS, Workload

    workload = Workload(users=100_000, messages_per_user_per_day=20)
    sessions_per_second = (
        workload.users * workload.sessions_per_user_per_day * PEAK_MINUTE_SHARE / 60
    )
    needed = {
        "iotchat-commands": sessions_per_second * COMMANDS_MS / 1000,
        "iotchat-presence": 2 * sessions_per_second * PRESENCE_MS / 1000,
    }
    manifest = Manifest.load()
    for name, busy in needed.items():
        spec = manifest.get(name)
        assert spec is not None and spec.reserved_concurrency is not None
        assert spec.reserved_concurrency >= math.ceil(round(busy * HEADROOM, 6)), name
    stream = manifest.get("iotchat-stream")
    assert stream is not None and stream.reserved_concurrency == 1  # one shard, one batch
