"""``iotchat up`` and ``iotchat logs``: run the local stack and read its Lambda logs."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

from cli.options import VerboseOption, setup_logging


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
    ws_port: Annotated[
        int,
        typer.Option(
            help="MQTT over plain WebSocket for the web app (SigV4, loopback only); 0 picks a "
            "free port."
        ),
    ] = 8083,
    api_port: Annotated[
        int, typer.Option(help="API endpoint (AWS_ENDPOINT_URL); 0 picks a free port.")
    ] = 4566,
    web_port: Annotated[int, typer.Option(help="Web client; 0 picks a free port.")] = 8080,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A Host name to answer besides loopback ones (repeatable); other names get 403."
        ),
    ] = None,
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
    trace: Annotated[
        bool,
        typer.Option(help="Record each message's steps for iotchat trace (docs/tracing.md)."),
    ] = True,
    verbose: VerboseOption = 0,
) -> None:
    """Run the local stack in the foreground until Ctrl-C."""
    from infra.local.gateway import Limits
    from infra.local.stack import StackOptions, run_until_signalled
    from infra.local.state_lock import StackAlreadyRunning

    began = time.monotonic()

    setup_logging(verbose)
    try:
        limits = Limits.from_overrides(limit or [])
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--limit") from exc
    options = StackOptions(
        state_dir=state_dir,
        mqtt_port=mqtt_port,
        mqtts_port=mqtts_port,
        wss_port=wss_port,
        ws_port=ws_port,
        api_port=api_port,
        web_port=web_port,
        limits=limits,
        allowed_hosts=tuple(allow_host or ()),
        trace=trace,
    )
    if rules_dir is not None:
        options.rules_dir = rules_dir
    if manifest is not None:
        options.manifest = manifest
    try:
        asyncio.run(
            run_until_signalled(
                options, on_ready=lambda stack: typer.echo(ready_banner(stack, began))
            )
        )
    except StackAlreadyRunning as exc:
        typer.echo(f"iotchat up: {exc}", err=True)
        raise typer.Exit(1) from exc
    except OSError as exc:
        typer.echo(f"iotchat up: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo("stopped")


def ready_banner(stack: LocalStack, began: float) -> str:
    """Where to go next, once the stack serves: the web app, the terminal commands, the AWS
    CLI line, and how to stop."""
    described = stack.describe()
    stack_file = stack.stack_file
    default = Path(".iotchat").resolve()
    here = stack.state_dir == default
    with_file = "" if here else f" --stack-file {stack_file}"
    with_dir = "" if here else f" --state-dir {stack.state_dir}"
    admin = described["admin"]
    lines = [f"iotchat is ready ({time.monotonic() - began:.1f} s)"]
    if "web" in described:
        lines.append(f"  web app      {described['web']['url']}")
    lines += [
        f"  terminal     iotchat chat{with_file}   |   iotchat listen{with_file}",
        f"  trace        iotchat trace{with_dir}",
        f"  AWS CLI      export AWS_ENDPOINT_URL={described['api']['endpoint']} "
        f"AWS_REGION={described['region']} AWS_ACCESS_KEY_ID={admin['accessKeyId']} "
        f"AWS_SECRET_ACCESS_KEY={admin['secretAccessKey']}",
        "  Ctrl-C stops.",
    ]
    return "\n".join(lines)


def logs(
    function: Annotated[str, typer.Argument(help="The Lambda function's name.")],
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(help="Only invocations from this long ago on: 30s, 10m, 2h, 1d."),
    ] = None,
    raw: Annotated[
        bool, typer.Option("--raw", help="The log as Lambda writes it (START/END/REPORT).")
    ] = False,
    state_dir: Annotated[Path, typer.Option(help="The stack's state directory.")] = Path(
        ".iotchat"
    ),
) -> None:
    """Print a Lambda function's log, each line with its time, request id and trace id
    (``--raw``: the file as Lambda writes it)."""
    import sys

    from infra.local.lambda_runtime.logtail import copy_log, is_known, known_functions
    from infra.local.lambda_runtime.logview import parse_since, print_log
    from infra.local.lambda_runtime.runtime import log_path

    if not is_known(state_dir, function):
        known = ", ".join(known_functions(state_dir)) or "none"
        typer.echo(f"iotchat logs: no function named {function!r} (known: {known})", err=True)
        raise typer.Exit(1)
    try:
        cutoff = parse_since(since) if since is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--since") from exc
    if raw and cutoff is not None:
        raise typer.BadParameter("--raw prints the whole file", param_hint="--since")

    def write(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        if raw:
            copy_log(state_dir, function, sys.stdout.buffer, follow=follow)
        else:
            print_log(log_path(state_dir, function), write, follow=follow, since=cutoff)
    except KeyboardInterrupt:
        return
