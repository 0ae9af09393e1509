"""``iotchat rules check|eval|test``: validate the rules, try SQL or every rule on a message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

rules_app = typer.Typer(no_args_is_help=True, help="Check and try out topic rules.")


@rules_app.command("check")
def rules_check(
    rules_dir: Annotated[Path | None, typer.Option(help="Rule files to check.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Lambda manifest to check against.")] = None,
) -> None:
    """Validate every rule file; print each problem and exit 1 if there is any."""
    from iot_rules.check import check_rules
    from iot_rules.loader import RULES_DIR
    from lambdas.manifest import MANIFEST_PATH, Manifest

    directory = rules_dir or RULES_DIR
    try:
        loaded = Manifest.load(manifest or MANIFEST_PATH)
    except ValueError as exc:
        typer.echo(f"manifest: {exc}", err=True)
        raise typer.Exit(1) from exc
    problems = check_rules(
        directory,
        functions=set(loaded.names()),
        tables=set(loaded.table_names),
        streams=set(loaded.stream_names),
    )
    for problem in problems:
        typer.echo(problem, err=True)
    count = len(list(directory.glob("*.json")))
    if problems:
        typer.echo(f"{len(problems)} problem(s) in {count} rule file(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"{count} rule file(s) OK")


# What the AWS console proposes for a new rule, and what every rule file of the project uses.
DEFAULT_SQL_VERSION = "2016-03-23"
# clientid() of the tried message: an MQTT client's, since the chat/out rules refuse what
# iot-data publishes (clientid() "n/a").
DEFAULT_CLIENT_ID = "test-client"
ClientIdOption = Annotated[
    str, typer.Option(help="What clientid() returns ('n/a' for an iot-data publish).")
]


@rules_app.command("eval")
def rules_eval(
    topic: Annotated[str, typer.Option(help="The topic the message arrives on.")],
    payload: Annotated[str, typer.Option(help="The message payload (JSON or any text).")],
    sql: Annotated[str | None, typer.Option(help="The rule's SQL statement.")] = None,
    rule: Annotated[
        str | None, typer.Option(help="Use this rule file's SQL and SQL version instead.")
    ] = None,
    client_id: ClientIdOption = DEFAULT_CLIENT_ID,
    sql_version: Annotated[
        str | None,
        typer.Option(help=f"2015-10-08 or 2016-03-23 (default {DEFAULT_SQL_VERSION} or --rule's)."),
    ] = None,
    rules_dir: Annotated[Path | None, typer.Option(help="Where --rule is looked up.")] = None,
) -> None:
    """Evaluate SQL against one message, like the AWS console's SQL tester."""
    import json

    from iot_rules.check import evaluate
    from iot_rules.sql import SqlError

    if (sql is None) == (rule is None):
        raise typer.BadParameter("give the SQL with --sql, or a rule file's with --rule")
    if rule is not None:
        definition = _rule_named(rule, rules_dir)
        sql = definition.sql
        sql_version = sql_version or definition.sql_version
    assert sql is not None
    try:
        outcome = evaluate(
            sql, topic, payload.encode(), client_id, sql_version or DEFAULT_SQL_VERSION
        )
    except SqlError as exc:
        typer.echo(f"sql: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(outcome))


@rules_app.command("test")
def rules_test(
    topic: Annotated[str, typer.Option(help="The topic the message arrives on.")],
    payload: Annotated[str, typer.Option(help="The message payload (JSON or any text).")],
    client_id: ClientIdOption = DEFAULT_CLIENT_ID,
    rule: Annotated[str | None, typer.Option(help="Only this rule (default: every rule).")] = None,
    rules_dir: Annotated[
        Path | None, typer.Option(help="Rule files (default: the project's iot_rules/rules).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Run the rules on one message as the engine would, without running their actions: which
    rules match, their SELECT output, and each action's target after substitution."""
    import json

    from infra.local.rules.dry_run import test_rules
    from iot_rules.loader import RULES_DIR, RuleFileError, load_rules

    try:
        definitions = load_rules(rules_dir or RULES_DIR)
    except RuleFileError as exc:
        typer.echo(f"rules: {exc}", err=True)
        raise typer.Exit(1) from exc
    if rule is not None:
        definitions = [_rule_named(rule, rules_dir)]
    outcomes = test_rules(definitions, topic, payload.encode(), client_id)
    if as_json:
        typer.echo(json.dumps(outcomes, indent=2))
        return
    for outcome in outcomes:
        if not outcome["matched"]:
            continue
        typer.echo(f"{outcome['rule']}: matched")
        typer.echo(f"  SELECT -> {json.dumps(outcome['output'])}")
        for action in outcome["actions"]:
            typer.echo(f"  {action['action']} -> {action['target']}")
        if outcome["errorAction"] is not None:
            error_action = outcome["errorAction"]
            typer.echo(f"  errorAction {error_action['action']} -> {error_action['target']}")
    others = [o for o in outcomes if not o["matched"]]
    if others:
        typer.echo("not matched: " + ", ".join(f"{o['rule']} ({o['why']})" for o in others))


def _rule_named(name: str, rules_dir: Path | None) -> Any:
    from iot_rules.loader import RULES_DIR, RuleFileError, load_rule_file

    path = (rules_dir or RULES_DIR) / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in (rules_dir or RULES_DIR).glob("*.json")))
        raise typer.BadParameter(f"no rule {name!r} (known: {known})", param_hint="--rule")
    try:
        return load_rule_file(path)
    except RuleFileError as exc:
        typer.echo(f"rules: {exc}", err=True)
        raise typer.Exit(1) from exc
