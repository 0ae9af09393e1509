"""`iotchat rules check` and `iotchat rules eval`, run as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROLE = "arn:aws:iam::000000000000:role/r"
GOOD = {
    "sql": "SELECT * FROM 'chat/out' WHERE type = 'message'",
    "actions": [{"republish": {"roleArn": ROLE, "topic": "chat/pub/${room}"}}],
}


def iotchat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    manifest = {
        "functions": [{"name": "commands", "handler": "lambdas.commands.handler"}],
        "tables": [
            {
                "TableName": "Messages",
                "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
            }
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


def check(project: Path, name: str, rule: Any) -> subprocess.CompletedProcess[str]:
    path = project / "rules" / f"{name}.json"
    path.write_text(rule if isinstance(rule, str) else json.dumps(rule))
    return iotchat(
        "rules",
        "check",
        "--rules-dir",
        str(project / "rules"),
        "--manifest",
        str(project / "manifest.json"),
    )


def test_the_projects_own_rules_pass():
    result = iotchat("rules", "check")
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


def test_a_sound_rule_passes(project):
    result = check(project, "Good", GOOD)
    assert result.returncode == 0, result.stderr
    assert "1 rule file(s) OK" in result.stdout


FN = "arn:aws:lambda:us-east-1:000000000000:function:"
BROKEN = [
    ("NotJson", "{not json", "not valid JSON"),
    ("SyntaxError", {**GOOD, "sql": "SELECT * FRM 'a'"}, "line 1, column"),
    ("UnknownFunction", {**GOOD, "sql": "SELECT nosuchfn(a) FROM 'a'"}, "nosuchfn"),
    ("MissingTopic", {**GOOD, "actions": [{"republish": {"roleArn": ROLE}}]}, "topic"),
    ("NoSql", {"actions": GOOD["actions"]}, "sql"),
    (
        "Unsupported",
        {**GOOD, "actions": [{"sns": {"targetArn": "arn:aws:sns:us-east-1:0:t", "roleArn": ROLE}}]},
        "not supported",
    ),
    (
        "MissingFunction",
        {**GOOD, "actions": [{"lambda": {"functionArn": FN + "ghost"}}]},
        "'ghost' is not in the Lambda manifest",
    ),
    (
        "MissingTable",
        {**GOOD, "actions": [{"dynamoDBv2": {"roleArn": ROLE, "putItem": {"tableName": "Nope"}}}]},
        "'Nope' is not defined",
    ),
    (
        "BadTemplate",
        {**GOOD, "actions": [{"republish": {"roleArn": ROLE, "topic": "x/${nosuchfn(a)}"}}]},
        "substitution template",
    ),
    ("bad-name", GOOD, "rule name"),
]


@pytest.mark.parametrize(("name", "rule", "problem"), BROKEN, ids=[b[0] for b in BROKEN])
def test_each_kind_of_broken_rule_is_rejected(project, name, rule, problem):
    result = check(project, name, rule)
    assert result.returncode == 1
    assert f"{name}.json" in result.stderr
    assert problem in result.stderr


def test_eval_prints_the_select_output():
    result = iotchat(
        "rules",
        "eval",
        "--sql",
        "SELECT text, clientid() AS sender FROM 'chat/out' WHERE type = 'message'",
        "--topic",
        "chat/out",
        "--client-id",
        "alice",
        "--payload",
        '{"type": "message", "text": "hi"}',
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "matched": True,
        "result": {"text": "hi", "sender": "alice"},
    }


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("chat/other", '{"type": "message"}'),  # FROM does not match
        ("chat/out", '{"type": "join"}'),  # WHERE is false
    ],
)
def test_eval_reports_no_match(topic, payload):
    result = iotchat(
        "rules",
        "eval",
        "--sql",
        "SELECT * FROM 'chat/out' WHERE type = 'message'",
        "--topic",
        topic,
        "--payload",
        payload,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"matched": False, "result": None}


def test_eval_reports_a_syntax_error_with_its_position():
    result = iotchat("rules", "eval", "--sql", "SELECT FROM", "--topic", "a", "--payload", "{}")
    assert result.returncode == 1
    assert "line 1" in result.stderr
