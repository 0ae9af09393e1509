"""Topic rules as data: ``iot_rules/rules/<RuleName>.json``, each a ``TopicRulePayload``.

A rule file is exactly what ``boto3.client('iot').create_topic_rule(ruleName=...,
topicRulePayload=...)`` takes, so the local engine and the CloudFormation template read the same
file. Validation uses botocore's own service model, not a copy of it. Like the policy files,
rules name the stack's resources with ``{stack}``, ``{region}`` and ``{account}``
(``"tableName": "{stack}-messages"``); ``${...}`` stays IoT's substitution template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from policies.arns import arn_resource_name
from policies.render import LOCAL_NAMES, RenderError, render

RULES_DIR = Path(__file__).resolve().parent / "rules"
RULE_NAME = re.compile(r"^[a-zA-Z0-9_]{1,128}$")

ReferenceKind = Literal["function", "table", "stream", "topic", "role"]

# The action types the local engine runs (any other is valid on AWS but not here), each with
# the fields that name a resource: (kind, path into the action's parameters). Every action may
# also name a ``roleArn``. The rule checker, the CloudFormation template and the local engine's
# action table all start from this one table.
ACTION_REFERENCES: dict[str, tuple[tuple[ReferenceKind, tuple[str, ...]], ...]] = {
    "republish": (("topic", ("topic",)),),
    "lambda": (("function", ("functionArn",)),),
    "dynamoDBv2": (("table", ("putItem", "tableName")),),
    "dynamoDB": (("table", ("tableName",)),),
    "kinesis": (("stream", ("streamName",)),),
}
LOCAL_ACTIONS = tuple(ACTION_REFERENCES)


class RuleFileError(ValueError):
    """A rule file that AWS would refuse, or the local engine cannot run; names file and problem."""


@dataclass(frozen=True)
class Reference:
    """One resource a rule action names, as written in the rule (an ARN, a name or a topic)."""

    kind: ReferenceKind
    value: str
    action: str
    in_error_action: bool = False

    @property
    def literal(self) -> bool:
        """False for a ``${...}`` substitution template, known only per message."""
        return "${" not in self.value

    @property
    def name(self) -> str:
        """The function's or role's name when the value is its ARN; else the value itself."""
        if self.kind == "function":
            return arn_resource_name(self.value, "lambda", "function") or self.value
        if self.kind == "role":
            return arn_resource_name(self.value, "iam", "role") or self.value
        return self.value


def action_references(
    action: Mapping[str, Any], in_error_action: bool = False
) -> Iterator[Reference]:
    """The resources one action names, in :data:`ACTION_REFERENCES` order, then its role."""
    for kind, params in action.items():
        if not isinstance(params, Mapping):
            continue
        for ref_kind, path in ACTION_REFERENCES.get(kind, ()):
            value: Any = params
            for key in path:
                value = value.get(key) if isinstance(value, Mapping) else None
            if isinstance(value, str) and value:
                yield Reference(ref_kind, value, kind, in_error_action)
        role = params.get("roleArn")
        if isinstance(role, str) and role:
            yield Reference("role", role, kind, in_error_action)


@dataclass(frozen=True)
class RuleDefinition:
    name: str
    payload: dict[str, Any]
    path: Path | None = None

    @property
    def sql(self) -> str:
        return self.payload["sql"]

    @property
    def sql_version(self) -> str | None:
        return self.payload.get("awsIotSqlVersion")

    @property
    def disabled(self) -> bool:
        return bool(self.payload.get("ruleDisabled", False))

    @property
    def actions(self) -> list[dict[str, Any]]:
        return list(self.payload.get("actions", []))

    @property
    def error_action(self) -> dict[str, Any] | None:
        return self.payload.get("errorAction")

    def references(self) -> Iterator[Reference]:
        """Every resource the actions and the errorAction name, in the file's order."""
        for action in self.actions:
            yield from action_references(action)
        if self.error_action:
            yield from action_references(self.error_action, in_error_action=True)


@cache
def _payload_shape() -> Any:
    import botocore.session

    model = botocore.session.get_session().get_service_model("iot")
    return model.shape_for("TopicRulePayload")


def validate_payload(name: str, payload: Any, where: str) -> list[str]:
    """Problems with one rule against botocore's model and the local engine; empty when fine."""
    from botocore.validate import ParamValidator

    problems: list[str] = []
    if not RULE_NAME.match(name):
        problems.append(f"{where}: rule name {name!r} must match [a-zA-Z0-9_]{{1,128}}")
    if not isinstance(payload, dict):
        return [*problems, f"{where}: a rule file must hold a JSON object (a TopicRulePayload)"]
    report = ParamValidator().validate(payload, _payload_shape())
    if report.has_errors():
        for line in report.generate_report().splitlines():
            if line.strip() and not line.startswith("Parameter validation failed"):
                problems.append(f"{where}: {line.strip()}")
    actions = payload.get("actions")
    if isinstance(actions, list):
        for index, action in enumerate(actions):
            problems += _local_action_problems(action, f"{where}: actions[{index}]")
    error_action = payload.get("errorAction")
    if error_action is not None:
        problems += _local_action_problems(error_action, f"{where}: errorAction")
    return problems


def _local_action_problems(action: Any, where: str) -> list[str]:
    if not isinstance(action, dict) or len(action) != 1:
        return [f"{where}: an action holds exactly one action type"]
    (kind,) = action
    if kind not in LOCAL_ACTIONS:
        return [
            f"{where}: action type {kind!r} is not supported by the local stack "
            f"(supported: {', '.join(LOCAL_ACTIONS)})"
        ]
    return []


def load_rule_file(path: Path, names: Mapping[str, str] = LOCAL_NAMES) -> RuleDefinition:
    """One rule, with ``{stack}``/``{region}``/``{account}`` filled in from ``names``."""
    where = path.name
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RuleFileError(f"{where}: not valid JSON: {exc}") from None
    try:
        payload = render(payload, **names)
    except RenderError as exc:
        raise RuleFileError(f"{where}: {exc}") from None
    problems = validate_payload(path.stem, payload, where)
    if problems:
        raise RuleFileError("\n".join(problems))
    return RuleDefinition(path.stem, payload, path)


def load_rules(
    directory: Path = RULES_DIR, names: Mapping[str, str] = LOCAL_NAMES
) -> list[RuleDefinition]:
    """Every ``*.json`` rule in ``directory``, sorted by name; raises on the first bad file."""
    if not directory.is_dir():
        return []
    return [load_rule_file(path, names) for path in sorted(directory.glob("*.json"))]
