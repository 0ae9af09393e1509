"""The local engine runs exactly the action types the rule loader accepts (one list, on top)."""

from __future__ import annotations

from infra.local.rules.actions import ACTION_TYPES
from iot_rules.loader import ACTION_REFERENCES, LOCAL_ACTIONS


def test_the_engine_has_a_class_for_every_action_the_loader_accepts_and_no_other() -> None:
    assert tuple(ACTION_TYPES) == LOCAL_ACTIONS == tuple(ACTION_REFERENCES)
