"""The AWS side: ``template``, ``deploy``, ``outputs``, ``destroy`` and the ``cost`` estimate.

boto3 and infra/aws are imported when a command runs, so ``iotchat --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from infra.aws.deploy import Deployment

AwsStackFileOption = Annotated[
    Path | None,
    typer.Option(
        "--stack-file",
        help="Where to write (or find) the AWS stack's file (default: $IOTCHAT_STACK_FILE, "
        "else .iotchat/stack.json).",
    ),
]
StackNameOption = Annotated[
    str | None, typer.Option(help="Stack name (default: the stack file's).")
]
RegionOption = Annotated[str | None, typer.Option(help="Region (default: the stack file's).")]


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


def _change(
    command: str,
    stack: str,
    region: str,
    stack_file: Path | None,
    act: Callable[[Deployment, Path], object],
) -> None:
    """Run ``act`` on a deployment that asks before it changes anything; one-line failures."""
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
        act(deployment, resolve_path(stack_file))
    except Cancelled as exc:
        typer.echo(f"iotchat {command}: {exc}", err=True)
        raise typer.Exit(1) from None
    except (DeployError, TemplateError, ClientError, BotoCoreError) as exc:
        raise _aws_failure(command, exc) from None


def template(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write here instead of stdout.")
    ] = None,
    stack: Annotated[str, typer.Option(help="The stack name the template is built for.")] = (
        "iotchat"
    ),
    reserve_concurrency: Annotated[
        bool,
        typer.Option(
            "--reserve-concurrency",
            help="Reserve the manifest's Lambda concurrency (unchecked here: deploy checks).",
        ),
    ] = False,
) -> None:
    """Print the CloudFormation template built from the rules, policies and manifest."""
    from infra.aws.template import TemplateError, build_template, template_json

    try:
        text = template_json(build_template(stack, reserve_concurrency=reserve_concurrency))
    except (TemplateError, ValueError) as exc:
        typer.echo(f"iotchat template: {exc}", err=True)
        raise typer.Exit(1) from exc
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        typer.echo(f"wrote {output} ({len(text)} bytes)", err=True)


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
    reserve_concurrency: Annotated[
        bool,
        typer.Option(
            "--reserve-concurrency",
            help="Reserve the manifest's Lambda concurrency (checked against the account's "
            "unreserved concurrency first); default: reserve none.",
        ),
    ] = False,
) -> None:
    """Create or update the stack on AWS through a change set, upload the web app, write the
    stack file."""
    _change(
        "deploy",
        stack,
        region,
        stack_file,
        lambda deployment, path: deployment.deploy(
            stream=stream, yes=yes, stack_file=path, reserve_concurrency=reserve_concurrency
        ),
    )


def outputs(
    stack: StackNameOption = None,
    region: RegionOption = None,
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


def destroy(
    stack: StackNameOption = None,
    region: RegionOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    stack_file: AwsStackFileOption = None,
) -> None:
    """Empty the buckets, detach the IoT policies, delete the stack and its artifacts bucket."""
    name, where = _aws_target(stack, region, stack_file)
    _change(
        "destroy",
        name,
        where,
        stack_file,
        lambda deployment, path: deployment.destroy(yes=yes, stack_file=path),
    )


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
