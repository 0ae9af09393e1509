"""The manifest refuses what AWS's CreateFunction would refuse, naming the function and field."""

from __future__ import annotations

import json

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
