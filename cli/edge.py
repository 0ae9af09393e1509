"""``iotchat edge run|package``: run a device in the chat, or build its Greengrass component.

The component itself lives in client/edge/ (it ships to the device); these are its commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cli.options import StackFileOption, VerboseOption, setup_logging

edge_app = typer.Typer(
    no_args_is_help=True, help="Run a device in the chat, or package it for Greengrass."
)


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
    verbose: VerboseOption = 0,
) -> None:
    """Join the device to a room over mutual TLS until Ctrl-C (see docs/edge.md)."""
    from client.edge.runner import EdgeError, EdgeSettings, run

    setup_logging(verbose)
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
