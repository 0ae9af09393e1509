"""RuleDefinition.references(): the one walk over a rule's actions that the checker and the
CloudFormation template share."""

from __future__ import annotations

from iot_rules.loader import ACTION_REFERENCES, LOCAL_ACTIONS, RuleDefinition, load_rules


def test_every_action_and_the_error_action_are_walked() -> None:
    rule = RuleDefinition(
        "r",
        {
            "sql": "SELECT * FROM 'a'",
            "actions": [
                {"republish": {"topic": "chat/pub/${room}", "roleArn": "arn:aws:iam::1:role/rp"}},
                {"dynamoDBv2": {"putItem": {"tableName": "{stack}-messages"}}},
                {"kinesis": {"streamName": "s", "partitionKey": "k"}},
            ],
            "errorAction": {
                "lambda": {"functionArn": "arn:aws:lambda:{region}:{account}:function:{stack}-e"}
            },
        },
    )
    got = [(r.kind, r.name, r.action, r.in_error_action, r.literal) for r in rule.references()]
    assert got == [
        ("topic", "chat/pub/${room}", "republish", False, False),
        ("role", "rp", "republish", False, True),
        ("table", "{stack}-messages", "dynamoDBv2", False, True),
        ("stream", "s", "kinesis", False, True),
        ("function", "{stack}-e", "lambda", True, True),
    ]


def test_the_project_rules_name_only_known_kinds() -> None:
    kinds = {ref.kind for rule in load_rules() for ref in rule.references()}
    assert kinds <= {"function", "table", "stream", "topic", "role"}
    assert tuple(ACTION_REFERENCES) == LOCAL_ACTIONS


# What the rules name bare that is also an SQL word: AWS publishes no reserved-word list and no
# documented way to quote a top-level field in WHERE (`*` is "used in the SELECT clause only",
# https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-json.html), so each of these is
# unverified on AWS until a deploy tries it (docs/iot-sql.md). A new one must be added here on
# purpose, or renamed in the protocol.
UNVERIFIED_ON_AWS = {"to", "group", "text"}


def test_the_rules_name_no_new_sql_word_as_a_bare_field() -> None:
    from iot_rules.check import sql_word_fields

    used = set()
    for rule in load_rules():
        used |= sql_word_fields(rule.sql, rule.sql_version)
    assert used <= UNVERIFIED_ON_AWS, used - UNVERIFIED_ON_AWS


def test_sql_word_fields_finds_bare_names_and_paths_but_not_strings_or_aliases() -> None:
    from iot_rules.check import sql_word_fields

    sql = "SELECT text, group.x AS order, 'to' AS y, get(*, 'user') AS z FROM 'a' WHERE Date > 1"
    assert sql_word_fields(sql, "2016-03-23") == {"text", "group", "Date"}
    assert sql_word_fields("SELECT room, name FROM 'a'") == set()
