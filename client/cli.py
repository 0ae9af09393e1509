"""The ``iotchat`` command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A real-time chat on AWS IoT Core, with a local stack that behaves like it.",
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # One line per WebSocket open/close is noise at INFO, and costs CPU under connect load.
    logging.getLogger("websockets").setLevel(logging.DEBUG if verbose else logging.WARNING)


@app.command()
def up(
    state_dir: Annotated[Path, typer.Option(help="Where the stack keeps its state.")] = Path(
        ".iotchat"
    ),
    mqtt_port: Annotated[
        int, typer.Option(help="Plain MQTT over TCP (loopback only); 0 picks a free port.")
    ] = 1883,
    mqtts_port: Annotated[
        int, typer.Option(help="MQTT over mutual TLS; 0 picks a free port.")
    ] = 8883,
    wss_port: Annotated[
        int, typer.Option(help="MQTT over SigV4 WebSocket (TLS); 0 picks a free port.")
    ] = 8443,
    api_port: Annotated[
        int, typer.Option(help="Edge API (AWS_ENDPOINT_URL); 0 picks a free port.")
    ] = 4566,
    web_port: Annotated[int, typer.Option(help="Web client; 0 picks a free port.")] = 8080,
    limit: Annotated[
        list[str] | None,
        typer.Option(help="Override an AWS limit, e.g. --limit publishes_per_second=5000."),
    ] = None,
    rules_dir: Annotated[
        Path | None,
        typer.Option(help="Topic rules to run (default: the project's iot_rules/rules)."),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(help="Lambda manifest (default: the project's lambdas/manifest.json)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the local stack in the foreground until Ctrl-C."""
    from infra.local.gateway import Limits
    from infra.local.stack import StackOptions, run_until_signalled

    _setup_logging(verbose)
    try:
        limits = Limits.from_overrides(limit or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--limit") from exc
    options = StackOptions(
        state_dir=state_dir,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        wss_port=wss_port,
        api_port=api_port,
        web_port=web_port,
        limits=limits,
    )
    if rules_dir is not None:
        options.rules_dir = rules_dir
    if manifest is not None:
        options.manifest = manifest
    try:
        asyncio.run(run_until_signalled(options))
    except OSError as exc:
        typer.echo(f"iotchat up: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def bench(
    name: Annotated[str, typer.Argument(help="Benchmark name, e.g. gateway-fanout, or 'all'.")],
    quick: Annotated[bool, typer.Option("--quick", help="Smaller, faster run.")] = False,
) -> None:
    """Run a benchmark; prints one JSON object per result line."""
    from benchmarks import run_benchmark

    raise typer.Exit(run_benchmark(name, quick=quick))


@app.command()
def logs(
    function: Annotated[str, typer.Argument(help="The Lambda function's name.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    state_dir: Annotated[Path, typer.Option(help="The stack's state directory.")] = Path(
        ".iotchat"
    ),
) -> None:
    """Print a Lambda function's log (handler output and START/END/REPORT lines)."""
    import sys

    from infra.local.lambda_runtime.logtail import copy_log, is_known, known_functions

    if not is_known(state_dir, function):
        known = ", ".join(known_functions(state_dir)) or "none"
        typer.echo(f"iotchat logs: no function named {function!r} (known: {known})", err=True)
        raise typer.Exit(1)
    try:
        copy_log(state_dir, function, sys.stdout.buffer, follow=follow)
    except KeyboardInterrupt:
        return


rules_app = typer.Typer(no_args_is_help=True, help="Check and try out topic rules.")
app.add_typer(rules_app, name="rules")


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
    problems = check_rules(directory, functions=set(loaded.names()), tables=set(loaded.table_names))
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


device_app = typer.Typer(no_args_is_help=True, help="Give devices their own X.509 identity.")
app.add_typer(device_app, name="device")

StackFileOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-file", help="Stack file (default: $IOTCHAT_STACK_FILE, else .iotchat/stack.json)."
    ),
]


@device_app.command("create")
def device_create(
    name: Annotated[
        str, typer.Argument(help="Thing name; the device connects with it as client id.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the files (default: ./NAME).")
    ] = None,
    stack_file: StackFileOption = None,
) -> None:
    """Register a device (thing + ACTIVE certificate + device policy) and write its files."""
    from client.devices import DeviceError, create_device

    try:
        result = create_device(name, out, stack_file)
    except DeviceError as exc:
        typer.echo(f"iotchat device create: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"device {result.name}: certificate {result.certificate_id} ACTIVE")
    typer.echo(f"  certificate: {result.cert_path}")
    typer.echo(f"  private key: {result.key_path} (mode 0600)")
    if result.ca_path is not None:
        typer.echo(f"  CA:          {result.ca_path}")
    else:
        typer.echo("  CA:          not written; supply Amazon Root CA 1 yourself")
    typer.echo(f"  settings:    {result.config_path}")


@device_app.command("revoke")
def device_revoke(
    name: Annotated[str, typer.Argument(help="The device's thing name.")],
    stack_file: StackFileOption = None,
) -> None:
    """Mark the device's certificates REVOKED: the gateway refuses them from now on."""
    from client.devices import DeviceError, revoke_device

    try:
        revoked = revoke_device(name, stack_file)
    except DeviceError as exc:
        typer.echo(f"iotchat device revoke: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"device {name}: {len(revoked)} certificate(s) REVOKED")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
