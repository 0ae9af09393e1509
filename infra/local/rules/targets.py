"""What an action writes to for one message: its substituted target, named as AWS logs it.

Shared by the engine's trace entries and ``iotchat rules test`` (which shows the targets
without running the actions), so both name a republish's topic after its ``${...}``
substitutions the same way.
"""

from __future__ import annotations

from infra.local.rules.actions import (
    Action,
    DynamoDBAction,
    DynamoDBv2Action,
    KinesisAction,
    LambdaAction,
    RepublishAction,
)
from iot_rules.sql import SqlContext, SqlMessage

# The key of each action's target in a log entry's ``resources``.
_RESOURCE_KEYS: dict[type[Action], str] = {
    RepublishAction: "RepublishTopic",
    LambdaAction: "FunctionArn",
    DynamoDBv2Action: "TableName",
    DynamoDBAction: "TableName",
    KinesisAction: "StreamName",
}


def action_target(action: Action, msg: SqlMessage, ctx: SqlContext | None) -> str:
    """The topic, table, function or stream ``action`` reaches for ``msg``; the unsubstituted
    text when a substitution cannot be rendered (the action itself then fails and says why)."""
    try:
        if isinstance(action, RepublishAction):
            return action.render_topic(msg, ctx)
        if isinstance(action, DynamoDBv2Action | DynamoDBAction):
            return action.table.render(msg, ctx)
        if isinstance(action, LambdaAction):
            return str(action.function_arn)
        if isinstance(action, KinesisAction):
            return str(action.stream)
    except (ValueError, KeyError):
        pass
    return action.resource


def resources(action: Action, target: str) -> dict[str, str]:
    """A log entry's ``resources`` for ``action`` writing to ``target``."""
    return {_RESOURCE_KEYS.get(type(action), "Resource"): target}
