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
