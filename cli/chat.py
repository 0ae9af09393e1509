"""The chat from a shell: ``send``, ``listen``, ``chat``, ``signup``, ``login``, ``logout``.

The commands only read options; cli/terminal.py and cli/interactive.py do the work, imported
when a command runs so ``iotchat --help`` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from cli.options import StackFileOption

if TYPE_CHECKING:
    from cli.terminal import Session

T = TypeVar("T")

NAME_HELP = "Your display name: stored and shown to everyone next to your @handle."
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


def _run(command: Callable[[], T]) -> T:
    """Run a chat command; a CliFailure becomes its message on stderr and its exit code."""
    from cli.terminal import CliFailure

    try:
        return command()
    except CliFailure as failure:
        typer.echo(f"iotchat: {failure}", err=True)
        raise typer.Exit(failure.code) from None


def _in_session(
    stack_file: Path | None, session_file: Path | None, command: Callable[[Session], T]
) -> T:
    """Run ``command`` as the session's identity (signed-in user, else the guest)."""
    from cli.terminal import open_session

    return _run(lambda: command(open_session(stack_file, session_file)))


def _check_protocol(protocol: str) -> str:
    if protocol not in ("mqtt5", "mqtt311"):
        raise typer.BadParameter("choose mqtt5 or mqtt311", param_hint="--protocol")
    return protocol


def send(
    text: Annotated[str, typer.Argument(help="What to say.")],
    room: Annotated[str, typer.Option("--room", "-r", help="The room to post to.")],
    name: Annotated[str | None, typer.Option(help=NAME_HELP)] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
    protocol: ProtocolOption = "mqtt5",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the room's echo.")] = 15.0,
) -> None:
    """Post one message to a room and wait until the room carries it."""
    from cli import terminal

    _check_protocol(protocol)
    message_id = _in_session(
        stack_file,
        session_file,
        lambda session: terminal.send(session, room, text, name, protocol, timeout),
    )
    typer.echo(message_id)


def listen(
    room: Annotated[
        list[str] | None, typer.Option("--room", "-r", help="Join this room (repeatable).")
    ] = None,
    json_lines: Annotated[
        bool, typer.Option("--json", help="One JSON object per line instead of text.")
    ] = False,
    name: Annotated[str | None, typer.Option(help=NAME_HELP)] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
    protocol: ProtocolOption = "mqtt5",
) -> None:
    """Print the rooms' history, then everything said, until Ctrl-C (your inbox included)."""
    from cli import terminal

    _check_protocol(protocol)
    _in_session(
        stack_file,
        session_file,
        lambda session: terminal.listen(session, room or [], json_lines, name, protocol),
    )


def chat(
    room: Annotated[str, typer.Option("--room", "-r", help="The room to start in.")] = "lobby",
    name: Annotated[str | None, typer.Option(help=NAME_HELP)] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
    protocol: ProtocolOption = "mqtt5",
) -> None:
    """Chat interactively in the terminal: type to talk, /help for commands, /quit to leave."""
    from cli.interactive import run_chat
    from client.chat_client import valid_room

    _check_protocol(protocol)
    if not valid_room(room):
        raise typer.BadParameter("1-64 letters, digits, _ or -", param_hint="--room")
    _in_session(stack_file, session_file, lambda session: run_chat(session, room, name, protocol))


def signup(
    email: Annotated[str, typer.Option(help="Your email address (also your user name).")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True)],
    handle: Annotated[
        str | None,
        typer.Option(
            help="Your handle: how others address you (@handle), unique, fixed once chosen; "
            "3-32 of a-z 0-9 _ -."
        ),
    ] = None,
    code: Annotated[
        str | None, typer.Option(help="The confirmation code, if you have it already.")
    ] = None,
    stack_file: StackFileOption = None,
    session_file: SessionOption = None,
) -> None:
    """Create an account with its handle, confirm it with the emailed code, and sign in."""
    from cli import terminal

    def ask_code(outbox: str | None) -> str:
        if outbox:
            typer.echo(f"The local stack writes its emails to {outbox}", err=True)
        return typer.prompt("Confirmation code")

    identity_id = _run(
        lambda: terminal.signup(stack_file, session_file, email, password, code, ask_code, handle)
    )
    typer.echo(f"signed in as {email} ({identity_id})")


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


def logout(stack_file: StackFileOption = None, session_file: SessionOption = None) -> None:
    """Forget the signed-in user of this stack (you are a guest again)."""
    from cli import terminal

    _run(lambda: terminal.logout(stack_file, session_file))
    typer.echo("signed out")
