"""``iotchat rules check|eval``: validate the topic rules and try their SQL on one message."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


@rules_app.command("eval")
def rules_eval(
    sql: Annotated[str, typer.Option(help="The rule's SQL statement.")],
    topic: Annotated[str, typer.Option(help="The topic the message arrives on.")],
    payload: Annotated[str, typer.Option(help="The message payload (JSON or any text).")],
    client_id: Annotated[str, typer.Option(help="What clientid() returns.")] = "n/a",
    sql_version: Annotated[
        str | None, typer.Option(help="2015-10-08 (default) or 2016-03-23.")
    ] = None,
) -> None:
    """Evaluate SQL against one message, like the AWS console's SQL tester."""
    import json

    from iot_rules.check import evaluate
    from iot_rules.sql import SqlError

    try:
        outcome = evaluate(sql, topic, payload.encode(), client_id, sql_version)
    except SqlError as exc:
        typer.echo(f"sql: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(outcome))
