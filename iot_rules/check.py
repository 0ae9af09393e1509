"""``iotchat rules check`` and ``iotchat rules eval``: the rule author's tools.

``check`` finds every problem AWS or the local engine would hit, before deploying: invalid JSON,
a payload botocore's model refuses, SQL that does not parse (with line and column), unknown
functions, actions of the wrong shape, and references to Lambda functions or DynamoDB tables
the project does not define. ``eval`` is the console's SQL tester on the command line.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .loader import RULES_DIR, RuleFileError, load_rule_file
from .sql import SqlError, SqlMessage, compile_sql, compile_template

_FUNCTION_ARN = re.compile(r"^arn:aws:lambda:[^:]*:[^:]*:function:([A-Za-z0-9_-]+)(:[^:]+)?$")


def _function_name(arn: str) -> str | None:
    """The function a Lambda ARN (or a bare name) refers to, when it is not templated."""
    if "${" in arn:
        return None
    match = _FUNCTION_ARN.match(arn)
    return match.group(1) if match else arn


def _action_references(action: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    """(function names, table names, stream names) an action refers to, when literal."""
    functions: list[str] = []
    tables: list[str] = []
    streams: list[str] = []
    for kind, params in action.items():
        if kind == "lambda":
            name = _function_name(params.get("functionArn", ""))
            if name:
                functions.append(name)
        elif kind == "dynamoDBv2":
            table = params.get("putItem", {}).get("tableName", "")
            if table and "${" not in table:
                tables.append(table)
        elif kind == "dynamoDB":
            table = params.get("tableName", "")
            if table and "${" not in table:
                tables.append(table)
        elif kind == "kinesis":
            stream = params.get("streamName", "")
            if stream and "${" not in stream:
                streams.append(stream)
    return functions, tables, streams


def check_rule_file(
    path: Path,
    functions: set[str] | None = None,
    tables: set[str] | None = None,
    streams: set[str] | None = None,
) -> list[str]:
    """Every problem in one rule file, each naming the file; empty when the rule is sound."""
    where = path.name
    try:
        rule = load_rule_file(path)
    except RuleFileError as exc:
        return str(exc).splitlines()
    problems: list[str] = []
    try:
        statement = compile_sql(rule.sql, rule.sql_version)
    except SqlError as exc:
        problems.append(f"{where}: sql: {exc}")
        statement = None
    specs = list(rule.actions)
    if rule.error_action:
        specs.append(rule.error_action)
    referenced_functions: list[str] = []
    referenced_tables: list[str] = []
    referenced_streams: list[str] = []
    for spec in specs:
        f, t, k = _action_references(spec)
        referenced_functions += f
        referenced_tables += t
        referenced_streams += k
        for params in spec.values():
            for text in _template_strings(params):
                try:
                    compile_template(text, rule.sql_version)
                except SqlError as exc:
                    problems.append(f"{where}: substitution template {text!r}: {exc}")
    if statement is not None:
        referenced_functions += [n for n in map(_function_name, statement.lambda_arns) if n]
        referenced_tables += list(statement.tables)
    if functions is not None:
        for name in referenced_functions:
            if name not in functions:
                problems.append(f"{where}: Lambda function {name!r} is not in the Lambda manifest")
    if tables is not None:
        for name in referenced_tables:
            if name not in tables:
                problems.append(f"{where}: DynamoDB table {name!r} is not defined")
    if streams is not None:
        for name in referenced_streams:
            if name not in streams:
                problems.append(f"{where}: Kinesis stream {name!r} is not defined")
    return problems


def _template_strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if "${" in value:
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _template_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _template_strings(item)


def check_rules(
    directory: Path = RULES_DIR,
    functions: set[str] | None = None,
    tables: set[str] | None = None,
    streams: set[str] | None = None,
) -> list[str]:
    problems: list[str] = []
    for path in sorted(directory.glob("*.json")):
        problems += check_rule_file(path, functions, tables, streams)
    return problems


def evaluate(
    sql: str, topic: str, payload: bytes, client_id: str = "n/a", version: str | None = None
) -> dict[str, Any]:
    """The console SQL tester: ``{"matched": bool, "result": <SELECT output or None>}``."""
    statement = compile_sql(sql, version)
    if not statement.matches(topic):
        return {"matched": False, "result": None}
    msg = SqlMessage(
        topic=topic, payload=payload, client_id=client_id, timestamp_ms=int(time.time() * 1000)
    )
    result = statement.evaluate(msg)
    if result is None:
        return {"matched": False, "result": None}
    if result.raw is not None:
        return {"matched": True, "result": result.raw.decode("utf-8", "replace")}
    return {"matched": True, "result": json.loads(result.to_bytes())}
