"""Fixtures of the registry tests: a state dir and a registry opened in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.local.registry import Registry


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def registry(state_dir: Path) -> Registry:
    return Registry.open(state_dir)
