"""The rule set the engine obeys: the project's rules, then the API's changes, kept in the state
dir so a new stack on the same state dir (a restart) runs the same rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.local.api.signed import ServiceError
from infra.local.iot.topic_rules import TopicRules, topic_pattern
from iot_rules.loader import RuleDefinition

ROLE = "arn:aws:iam::000000000000:role/iotchat-rule-republish"


def _payload(source: str, target: str = "chat/pub/echo") -> dict[str, Any]:
    return {
        "sql": f"SELECT * FROM '{source}'",
        "awsIotSqlVersion": "2016-03-23",
        "actions": [{"republish": {"topic": target, "roleArn": ROLE}}],
    }


PROJECT = [RuleDefinition("project_rule", _payload("a/b"))]


class Engine:
    """Records what it was asked to run; refuses a rule named ``broken``."""

    def __init__(self) -> None:
        self.running: list[str] = []

    def __call__(self, definitions: list[RuleDefinition]) -> None:
        if any(d.name == "broken" for d in definitions):
            raise ValueError("does not compile")
        self.running = [d.name for d in definitions if not d.disabled]


def _rules(state: Path, engine: Engine) -> TopicRules:
    rules = TopicRules(state, PROJECT, engine)
    engine(rules.definitions())  # what the stack does at start
    return rules


def test_changes_run_at_once_and_last_across_a_restart(tmp_path):
    engine = Engine()
    rules = _rules(tmp_path, engine)
    rules.create("echo", _payload("x/y"))
    assert engine.running == ["echo", "project_rule"]
    rules.set_disabled("project_rule", True)
    assert engine.running == ["echo"]
    assert (tmp_path / "iot" / "topic-rules.json").stat().st_mode & 0o077 == 0

    restarted = Engine()
    _rules(tmp_path, restarted)
    assert restarted.running == ["echo"]


def test_a_deleted_project_rule_stays_deleted_and_a_new_one_can_take_its_name(tmp_path):
    engine = Engine()
    rules = _rules(tmp_path, engine)
    rules.delete("project_rule")
    assert engine.running == [] and "project_rule" not in rules.rules()
    again = _rules(tmp_path, Engine())
    assert "project_rule" not in again.rules()
    again.create("project_rule", _payload("c/d"))
    assert topic_pattern(again.get("project_rule").definition.sql) == "c/d"


def test_refusals_change_nothing(tmp_path):
    engine = Engine()
    rules = _rules(tmp_path, engine)
    with pytest.raises(ServiceError) as exists:
        rules.create("project_rule", _payload("e/f"))
    assert exists.value.code == "ResourceAlreadyExistsException"
    with pytest.raises(ServiceError) as missing:
        rules.set_disabled("nope", True)
    assert missing.value.code == "ResourceNotFoundException" and missing.value.status == 404
    with pytest.raises(ServiceError) as invalid:
        rules.create("bad name!", _payload("g/h"))
    assert invalid.value.code == "InvalidRequestException"
    with pytest.raises(ServiceError) as broken:
        rules.create("broken", _payload("i/j"))
    assert broken.value.code == "SqlParseException"
    assert engine.running == ["project_rule"]
    assert set(rules.rules()) == {"project_rule"}
    assert set(_rules(tmp_path, Engine()).rules()) == {"project_rule"}
    # The legitimate change beside them still works.
    rules.replace("project_rule", _payload("k/l"))
    assert topic_pattern(rules.get("project_rule").definition.sql) == "k/l"


def test_the_number_of_rules_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr("infra.local.iot.topic_rules.MAX_RULES", 2)
    engine = Engine()
    rules = _rules(tmp_path, engine)
    rules.create("second", _payload("m/n"))
    with pytest.raises(ServiceError) as full:
        rules.create("third", _payload("o/p"))
    assert full.value.code == "LimitExceededException"
    assert engine.running == ["project_rule", "second"]
