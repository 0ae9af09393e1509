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


# AWS publishes no reserved-word list and no documented way to quote a top-level field in WHERE
# (`*` is "used in the SELECT clause only",
# https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-json.html), so a field that is
# also an SQL word would be unverified on AWS until a deploy tried it. The protocol avoids the
# risk instead (body, recipient, groupId; docs/iot-sql.md): no rule may name one, bare or as an
# output key.
def test_the_rules_name_no_sql_word_as_a_bare_field() -> None:
    from iot_rules.check import sql_word_fields

    used = set()
    for rule in load_rules():
        used |= sql_word_fields(rule.sql, rule.sql_version)
    assert used == set()


def test_the_rules_output_keys_are_no_sql_words() -> None:
    import re

    from iot_rules.check import SQL_WORDS

    aliases = set()
    for rule in load_rules():
        # `x AS key` names an output key; `cast(x AS String)` (followed by ")") names a type.
        aliases |= set(re.findall(r"\bAS\s+([A-Za-z_][A-Za-z0-9_]*)\b(?!\s*\))", rule.sql))
    assert {"conv", "mid", "tsid", "expiresAt", "sender", "ts"} <= aliases
    assert {a for a in aliases if a.lower() in SQL_WORDS} == set()


def test_sql_word_fields_finds_bare_names_and_paths_but_not_strings_or_aliases() -> None:
    from iot_rules.check import sql_word_fields

    sql = "SELECT text, group.x AS order, 'to' AS y, get(*, 'user') AS z FROM 'a' WHERE Date > 1"
    assert sql_word_fields(sql, "2016-03-23") == {"text", "group", "Date"}
    assert sql_word_fields("SELECT room, name FROM 'a'") == set()
