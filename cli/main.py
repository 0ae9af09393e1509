"""The ``iotchat`` command line."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

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
    ws_port: Annotated[
        int,
        typer.Option(
            help="MQTT over plain WebSocket for the web app (SigV4, loopback only); 0 picks a "
            "free port."
        ),
    ] = 8083,
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
        ws_port=ws_port,
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
    from cli.devices import DeviceError, create_device

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
    from cli.devices import DeviceError, revoke_device

    try:
        revoked = revoke_device(name, stack_file)
    except DeviceError as exc:
        typer.echo(f"iotchat device revoke: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"device {name}: {len(revoked)} certificate(s) REVOKED")


edge_app = typer.Typer(
    no_args_is_help=True, help="Run a device in the chat, or package it for Greengrass."
)
app.add_typer(edge_app, name="edge")


@edge_app.command("run")
def edge_run(
    device_dir: Annotated[
        Path, typer.Option("--device-dir", help="The files `iotchat device create` wrote.")
    ],
    room: Annotated[str, typer.Option("--room", "-r", help="The room the device joins.")] = "lobby",
    interval: Annotated[
        float, typer.Option("--interval", help="Seconds between telemetry reports.")
    ] = 60.0,
    stack_file: StackFileOption = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Join the device to a room over mutual TLS until Ctrl-C (see docs/edge.md)."""
    from client.edge.runner import EdgeError, EdgeSettings, run

    _setup_logging(verbose)
    settings = EdgeSettings(
        room=room, interval=interval, device_dir=device_dir, stack_file=stack_file
    )
    try:
        run(settings)
    except EdgeError as exc:
        typer.echo(f"iotchat edge run: {exc}", err=True)
        raise typer.Exit(1) from exc


@edge_app.command("package")
def edge_package(
    out: Annotated[Path, typer.Option("--out", help="Where to write artifacts/ and recipes/.")] = (
        Path("greengrass-build")
    ),
    bucket: Annotated[
        str, typer.Option("--bucket", help="The S3 bucket the artifact will be uploaded to.")
    ] = "amzn-s3-demo-bucket",
    prefix: Annotated[str, typer.Option("--prefix", help="Key prefix inside the bucket.")] = "",
    version: Annotated[
        str | None, typer.Option("--version", help="Component version (default: the recipe's).")
    ] = None,
    room: Annotated[str, typer.Option("--room", help="The default room.")] = "lobby",
) -> None:
    """Build the Greengrass component: the artifact zip and a recipe naming its S3 URI."""
    from client.edge.package import PackageError, package

    try:
        built = package(out, bucket=bucket, version=version, room=room, prefix=prefix)
    except PackageError as exc:
        typer.echo(f"iotchat edge package: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"artifact: {built.artifact}")
    typer.echo(f"recipe:   {built.recipe}")
    typer.echo(f"upload:   aws s3 cp {built.artifact} {built.artifact_uri}")
    typer.echo(
        "register: aws greengrassv2 create-component-version "
        f"--inline-recipe fileb://{built.recipe}"
    )


# ---------------------------------------------------------------------------------- the chat

ProtocolOption = Annotated[
    str,
    typer.Option("--protocol", help="mqtt5 (default) or mqtt311."),
]
SessionOption = Annotated[
    Path | None,
    typer.Option(
        "--session-file",
        help="Where sign-in and the guest identity are kept (default: $IOTCHAT_SESSION_FILE, "
        "else ~/.iotchat/sessions.json).",
    ),
]


def _run(command: Any) -> Any:
    """Run a chat command; a CliFailure becomes its message on stderr and its exit code."""
    from cli.terminal import CliFailure

    try:
        return command()
    except CliFailure as failure:
        typer.echo(f"iotchat: {failure}", err=True)
        raise typer.Exit(failure.code) from None


def _check_protocol(protocol: str) -> str:
    if protocol not in ("mqtt5", "mqtt311"):
        raise typer.BadParameter("choose mqtt5 or mqtt311", param_hint="--protocol")
    return protocol


@app.command()
def send(
    text: Annotated[str, typer.Argument(help="What to say.")],
    room: Annotated[str, typer.Option("--room", "-r", help="The room to post to.")],
    name: Annotated[str | None, typer.Option(help="Display name shown with the message.")] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
    protocol: ProtocolOption = "mqtt5",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the room's echo.")] = 15.0,
) -> None:
    """Post one message to a room and wait until the room carries it."""
    from cli.terminal import open_session
    from cli.terminal import send as send_message

    _check_protocol(protocol)
    message_id = _run(
        lambda: send_message(
            open_session(stack_file, session_file), room, text, name, protocol, timeout
        )
    )
    typer.echo(message_id)


@app.command()
def listen(
    room: Annotated[
        list[str] | None, typer.Option("--room", "-r", help="Join this room (repeatable).")
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of text.")
    ] = False,
    name: Annotated[str | None, typer.Option(help="Display name shown to the rooms.")] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
    protocol: ProtocolOption = "mqtt5",
) -> None:
    """Print the rooms' history, then everything said, until Ctrl-C (your inbox included)."""
    from cli.terminal import listen as listen_rooms
    from cli.terminal import open_session

    _check_protocol(protocol)
    _run(
        lambda: listen_rooms(
            open_session(stack_file, session_file), room or [], json_lines, name, protocol
        )
    )


@app.command()
def chat(
    room: Annotated[str, typer.Option("--room", "-r", help="The room to start in.")] = "lobby",
    name: Annotated[str | None, typer.Option(help="Display name shown with what you say.")] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
    protocol: ProtocolOption = "mqtt5",
) -> None:
    """Chat interactively in the terminal: type to talk, /help for commands, /quit to leave."""
    from cli.interactive import run_chat, valid_room
    from cli.terminal import open_session

    _check_protocol(protocol)
    if not valid_room(room):
        raise typer.BadParameter("1-64 letters, digits, _ or -", param_hint="--room")
    _run(lambda: run_chat(open_session(stack_file, session_file), room, name, protocol))


@app.command()
def signup(
    email: Annotated[str, typer.Option(help="Your email address (also your user name).")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    code: Annotated[
        str | None, typer.Option(help="The confirmation code, if you have it already.")
    ] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
) -> None:
    """Create an account, confirm it with the emailed code, and sign in."""
    from cli import terminal

    def ask_code(outbox: str | None) -> str:
        if outbox:
            typer.echo(f"The local stack writes its emails to {outbox}", err=True)
        return typer.prompt("Confirmation code")

    identity_id = _run(
        lambda: terminal.signup(stack_file, session_file, email, password, code, ask_code)
    )
    typer.echo(f"signed in as {email} ({identity_id})")


@app.command()
def login(
    email: Annotated[str, typer.Option(help="Your email address.")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True)],
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
) -> None:
    """Sign in; later commands on this stack use your account until `iotchat logout`."""
    from cli import terminal

    identity_id = _run(lambda: terminal.login(stack_file, session_file, email, password))
    typer.echo(f"signed in as {email} ({identity_id})")


@app.command()
def logout(stack_file: StackFileOption = None, session_file: SessionOption = None) -> None:
    """Forget the signed-in user of this stack (you are a guest again)."""
    from client.identity import SessionFile
    from client.stack_file import StackFileError, load_stack_file

    try:
        stack = load_stack_file(stack_file)
    except StackFileError as exc:
        typer.echo(f"iotchat: {exc}", err=True)
        raise typer.Exit(4) from None
    sessions = SessionFile(session_file)
    entry = sessions.load(stack.identity_pool_id)
    entry.pop("user", None)
    sessions.save(stack.identity_pool_id, entry)
    typer.echo("signed out")


@app.command()
def cost(
    users: Annotated[int, typer.Option(help="People using the chat in a month.")],
    messages_per_user_per_day: Annotated[float, typer.Option(help="Messages each posts a day.")],
    rooms: Annotated[int | None, typer.Option(help="Rooms (default: one per 50 users).")] = None,
    retention_days: Annotated[int, typer.Option(help="Days messages are kept.")] = 365,
    online_hours: Annotated[float, typer.Option(help="Hours a day each user is connected.")] = 8.0,
    stream: Annotated[bool, typer.Option(help="Include the Kinesis stream path.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Estimate the monthly AWS bill: this design, the seed design, API Gateway WebSockets."""
    import json

    from rich.console import Console
    from rich.table import Table

    from infra.aws.cost import Workload, estimate_all, load_prices, to_json

    try:
        workload = Workload(
            users=users,
            messages_per_user_per_day=messages_per_user_per_day,
            rooms=rooms,
            retention_days=retention_days,
            online_hours_per_day=online_hours,
            stream=stream,
        )
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    prices = load_prices()
    estimates = estimate_all(workload, prices)
    if json_output:
        typer.echo(json.dumps(to_json(workload, estimates, prices), indent=2))
        return
    console = Console()
    console.print(
        f"{workload.messages:,.0f} messages and {workload.deliveries:,.0f} deliveries a month; "
        f"prices: {prices['region']}, {prices['date']} (see docs/cost.md)"
    )
    for estimate in estimates:
        table = Table(title=estimate.design, show_footer=True)
        table.add_column("service", footer="total")
        table.add_column("item")
        table.add_column("quantity", justify="right")
        table.add_column("USD/month", justify="right", footer=f"{estimate.total:,.2f}")
        for item in estimate.items:
            table.add_row(
                item.service, item.what, f"{item.quantity:,.3f} {item.unit}", f"{item.cost:,.2f}"
            )
        console.print(table)


# ---------------------------------------------------------------------------------- AWS

AwsStackFileOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-file",
        help="Where to write (or find) the AWS stack's file (default: $IOTCHAT_STACK_FILE, "
        "else .iotchat/stack.json).",
    ),
]


def _aws_failure(command: str, exc: Exception) -> typer.Exit:
    """A deploy error, a refused AWS call or missing credentials, said in one line."""
    response = getattr(exc, "response", None)
    if response:
        error = response.get("Error", {})
        message = f"{error.get('Code')}: {error.get('Message')}"
    else:
        message = str(exc)
    typer.echo(f"iotchat {command}: {message}", err=True)
    return typer.Exit(1)


def _aws_target(stack: str | None, region: str | None, stack_file: Path | None) -> tuple[str, str]:
    """Stack name and region from the options, else from an AWS stack file."""
    import json

    from client.stack_file import resolve_path

    if stack and region:
        return stack, region
    try:
        info = json.loads(resolve_path(stack_file).read_text())
    except (OSError, ValueError):
        info = {}
    if info.get("kind") != "aws":
        raise typer.BadParameter("pass --stack and --region (no AWS stack file found)")
    return stack or info["stackName"], region or info["region"]


@app.command()
def template(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    stack: Annotated[str, typer.Option(help="The stack name the template is built for.")] = (
        "iotchat"
    ),
) -> None:
    """Print the CloudFormation template built from the rules, policies and manifest."""
    from infra.aws.template import TemplateError, build_template, template_json

    try:
        text = template_json(build_template(stack))
    except (TemplateError, ValueError) as exc:
        typer.echo(f"iotchat template: {exc}", err=True)
        raise typer.Exit(1) from exc
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output} ({len(text)} bytes)", err=True)


@app.command()
def deploy(
    stack: Annotated[str, typer.Option(help="Stack name: 1-24 of a-z 0-9 -.")],
    region: Annotated[str, typer.Option(help="AWS region, e.g. eu-west-1.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    stream: Annotated[
        bool | None,
        typer.Option(
            "--stream/--no-stream",
            help="The Kinesis path (bills by the hour); default: as deployed (off when new).",
        ),
    ] = None,
    stack_file: AwsStackFileOption = None,
) -> None:
    """Create or update the stack on AWS through a change set, upload the web app, write the
    stack file."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from client.stack_file import resolve_path
    from infra.aws.deploy import Cancelled, DeployError, Deployment
    from infra.aws.template import TemplateError

    try:
        deployment = Deployment(
            boto3.session.Session(region_name=region),
            stack,
            echo=typer.echo,
            confirm=lambda question: typer.confirm(question, default=False),
        )
        deployment.deploy(stream=stream, yes=yes, stack_file=resolve_path(stack_file))
    except Cancelled as exc:
        typer.echo(f"iotchat deploy: {exc}", err=True)
        raise typer.Exit(1) from None
    except (DeployError, TemplateError, ClientError, BotoCoreError) as exc:
        raise _aws_failure("deploy", exc) from None


@app.command()
def outputs(
    stack: Annotated[str | None, typer.Option(help="Stack name (default: the stack file's).")] = (
        None
    ),
    region: Annotated[str | None, typer.Option(help="Region (default: the stack file's).")] = None,
    stack_file: AwsStackFileOption = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the stack's outputs (ids, names, URLs)."""
    import json

    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from infra.aws.deploy import DeployError, Deployment

    name, where = _aws_target(stack, region, stack_file)
    try:
        values = Deployment(boto3.session.Session(region_name=where), name).outputs()
    except (DeployError, ClientError, BotoCoreError) as exc:
        raise _aws_failure("outputs", exc) from None
    if json_output:
        typer.echo(json.dumps(values, indent=2, sort_keys=True))
        return
    for key in sorted(values):
        typer.echo(f"{key:<20} {values[key]}")


@app.command()
def destroy(
    stack: Annotated[str | None, typer.Option(help="Stack name (default: the stack file's).")] = (
        None
    ),
    region: Annotated[str | None, typer.Option(help="Region (default: the stack file's).")] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    stack_file: AwsStackFileOption = None,
) -> None:
    """Empty the buckets, detach the IoT policies, delete the stack and its artifacts bucket."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from client.stack_file import resolve_path
    from infra.aws.deploy import Cancelled, DeployError, Deployment

    name, where = _aws_target(stack, region, stack_file)
    try:
        Deployment(
            boto3.session.Session(region_name=where),
            name,
            echo=typer.echo,
            confirm=lambda question: typer.confirm(question, default=False),
        ).destroy(yes=yes, stack_file=resolve_path(stack_file))
    except Cancelled as exc:
        typer.echo(f"iotchat destroy: {exc}", err=True)
        raise typer.Exit(1) from None
    except (DeployError, ClientError, BotoCoreError) as exc:
        raise _aws_failure("destroy", exc) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
