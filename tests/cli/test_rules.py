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
        "SELECT body, clientid() AS sender FROM 'chat/out' WHERE type = 'message'",
        "--topic",
        "chat/out",
        "--client-id",
        "alice",
        "--payload",
        '{"type": "message", "body": "hi"}',
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "matched": True,
        "result": {"body": "hi", "sender": "alice"},
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


ROOM_MESSAGE = '{"type":"message","id":"a","room":"lobby","body":"hi"}'


def rules_test(*args: str) -> list[dict[str, Any]]:
    result = iotchat("rules", "test", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rules_test_shows_the_matching_rule_and_its_substituted_target():
    outcomes = rules_test("--topic", "chat/out", "--payload", ROOM_MESSAGE)
    (matched,) = [o for o in outcomes if o["matched"]]
    assert matched["rule"] == "chat_room_message"
    assert matched["actions"] == [{"action": "republish", "target": "chat/pub/lobby"}]
    assert matched["output"]["room"] == "lobby" and matched["output"]["body"] == "hi"
    assert matched["errorAction"]["action"] == "lambda"
    assert {o["rule"] for o in outcomes} >= {"chat_commands", "chat_invalid", "chat_room_store"}


def test_rules_test_shows_an_invalid_message_s_error():
    bad_room = ROOM_MESSAGE.replace('"lobby"', '"bad room"')
    outcomes = rules_test("--topic", "chat/out", "--payload", bad_room, "--client-id", "ada")
    (matched,) = [o for o in outcomes if o["matched"]]
    assert matched["rule"] == "chat_invalid"
    assert matched["output"]["code"] == "INVALID_ROOM" and matched["output"]["ref"] == "a"
    assert matched["actions"] == [{"action": "republish", "target": "chat/in/ada"}]


def test_rules_test_prints_one_block_per_matching_rule():
    result = iotchat("rules", "test", "--topic", "chat/out", "--payload", ROOM_MESSAGE)
    assert result.returncode == 0, result.stderr
    assert "chat_room_message: matched" in result.stdout
    assert "republish -> chat/pub/lobby" in result.stdout
    assert "chat_invalid: matched" not in result.stdout


def test_rules_test_runs_one_rule_or_names_the_known_ones():
    (only,) = rules_test("--topic", "chat/out", "--payload", ROOM_MESSAGE, "--rule", "chat_invalid")
    assert (only["rule"], only["matched"], only["why"]) == ("chat_invalid", False, "WHERE")
    result = iotchat("rules", "test", "--topic", "a", "--payload", "{}", "--rule", "nope")
    assert result.returncode == 2
    assert "no rule 'nope'" in result.stderr and "chat_room_message" in result.stderr


def test_eval_takes_a_rule_file_s_sql_and_version():
    result = iotchat(
        "rules",
        "eval",
        "--rule",
        "chat_room_message",
        "--topic",
        "chat/out",
        "--payload",
        ROOM_MESSAGE,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    assert outcome["matched"] and outcome["result"]["room"] == "lobby"


def test_eval_defaults_to_the_2016_sql_version():
    sql = "SELECT isUndefined(x) AS missing FROM 'a'"
    result = iotchat("rules", "eval", "--sql", sql, "--topic", "a", "--payload", "{}")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"matched": True, "result": {"missing": True}}
    older = iotchat(
        "rules",
        "eval",
        "--sql",
        sql,
        "--topic",
        "a",
        "--payload",
        "{}",
        "--sql-version",
        "2015-10-08",
    )
    assert older.returncode == 1 and "2016-03-23" in older.stderr


def test_eval_needs_sql_or_a_rule_but_not_both():
    neither = iotchat("rules", "eval", "--topic", "a", "--payload", "{}")
    both = iotchat(
        "rules",
        "eval",
        "--sql",
        "SELECT * FROM 'a'",
        "--rule",
        "chat_invalid",
        "--topic",
        "a",
        "--payload",
        "{}",
    )
    assert neither.returncode == both.returncode == 2
    assert "--sql" in neither.stderr and "--rule" in both.stderr
