"""``iotchat rules check`` and ``iotchat rules eval``: the rule author's tools.

``check`` finds every problem AWS or the local engine would hit, before deploying: invalid JSON,
a payload botocore's model refuses, SQL that does not parse (with line and column), unknown
functions, actions of the wrong shape, and references to Lambda functions or DynamoDB tables
the project does not define. ``eval`` is the console's SQL tester on the command line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .loader import RULES_DIR, Reference, RuleFileError, load_rule_file
from .sql import SqlError, SqlMessage, compile_sql, compile_template

# What `check` compares with the project's definitions, and how it names each kind.
_DEFINED_IN = {
    "function": "Lambda function {!r} is not in the Lambda manifest",
    "table": "DynamoDB table {!r} is not defined",
    "stream": "Kinesis stream {!r} is not defined",
}


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
    for spec in specs:
        for params in spec.values():
            for text in _template_strings(params):
                try:
                    compile_template(text, rule.sql_version)
                except SqlError as exc:
                    problems.append(f"{where}: substitution template {text!r}: {exc}")
    references = list(rule.references())
    if statement is not None:
        references += [Reference("function", arn, "aws_lambda") for arn in statement.lambda_arns]
        references += [Reference("table", table, "get_dynamodb") for table in statement.tables]
    defined = {"function": functions, "table": tables, "stream": streams}
    for kind, message in _DEFINED_IN.items():
        known = defined[kind]
        if known is None:
            continue
        for ref in references:
            if ref.kind == kind and ref.literal and ref.name not in known:
                problems.append(f"{where}: {message.format(ref.name)}")
    return problems


# Words a bare field name could collide with in AWS's parser: IoT SQL's own keywords and cast
# type names (https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-reference.html,
# https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-sql-function-cast)
# and ANSI SQL reserved words. AWS publishes no reserved-word list, so whether AWS accepts such
# a field name is unverified; the local grammar accepts all but its own keywords.
SQL_WORDS = frozenset(
    {
        *("select", "from", "where", "as", "and", "or", "not", "case", "when", "then", "else"),
        *("end", "value", "set", "in", "contains", "cast", "true", "false", "null"),
        *("string", "nvarchar", "text", "ntext", "varchar", "int", "integer", "double"),
        *("decimal", "bool", "boolean"),
        *("all", "any", "between", "by", "create", "delete", "distinct", "drop", "exists"),
        *("group", "having", "insert", "into", "is", "join", "like", "limit", "order"),
        *("table", "to", "union", "update", "user", "values", "with", "timestamp", "date"),
    }
)


def sql_word_fields(sql: str, version: str | None = None) -> set[str]:
    """The payload fields a statement names bare that are also SQL words (case-insensitive)."""
    return {name for name in compile_sql(sql, version).fields_used if name.lower() in SQL_WORDS}


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
