"""The ``iotchat`` command: the typer app, assembled from one module per command group.

Commands are registered here, in the order ``iotchat --help`` lists them; each group's module
imports its heavy dependencies only when one of its commands runs.
"""

from __future__ import annotations

import typer

from cli import aws, bench, chat, stack, trace
from cli.devices import device_app
from cli.edge import edge_app
from cli.rules import rules_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A real-time chat on AWS IoT Core, with a local stack that behaves like it.",
)

for command in (
    stack.up,
    bench.bench,
    stack.logs,
    trace.trace,
    chat.send,
    chat.listen,
    chat.chat,
    chat.signup,
    chat.login,
    chat.logout,
    aws.cost,
    aws.template,
    aws.deploy,
    aws.outputs,
    aws.destroy,
):
    app.command()(command)

app.add_typer(rules_app, name="rules")
app.add_typer(device_app, name="device")
app.add_typer(edge_app, name="edge")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
