"""``iotchat send``, ``listen``, ``signup``, ``login``, ``logout``: the chat from a shell.

Exit codes: 0 done; 1 the chat refused the request (its error is printed); 2 wrong usage; 3
sign-up, sign-in or credentials refused; 4 no stack file, or no connection to the stack; 130
never (Ctrl-C ends ``listen`` cleanly with 0).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from client import events
from client.chat_client import WHOIS_WAIT, ChatClient, ConnectError
from client.identity import (
    AuthError,
    Identity,
    SessionFile,
    StackUnreachable,
    confirm_sign_up,
    sign_up,
)
from client.stack_file import StackFileError, StackInfo, load_stack_file

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_CONNECT = 4


class CliFailure(Exception):
    """Ends a command with a message on stderr and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Session:
    stack: StackInfo
    identity: Identity


def load_stack(stack_file: Path | None) -> StackInfo:
    try:
        return load_stack_file(stack_file)
    except StackFileError as exc:
        raise CliFailure(EXIT_CONNECT, str(exc)) from None


def open_session(stack_file: Path | None, session_file: Path | None = None) -> Session:
    stack = load_stack(stack_file)
    try:
        identity = Identity.current(stack, SessionFile(session_file))
    except StackUnreachable as exc:
        raise CliFailure(EXIT_CONNECT, str(exc)) from None
    except AuthError as exc:
        raise CliFailure(EXIT_AUTH, f"could not get an identity: {exc}") from None
    return Session(stack, identity)


PROFILE_WAIT = 5.0  # seconds `send` waits for hello's answer before posting anyway
SIGN_IN_HINT = "sign up with `iotchat signup` or sign in with `iotchat login`"


def connect(
    session: Session,
    protocol: str,
    on_event: Callable[[events.Event], None] | None = None,
    *,
    kind: str = "cli",
    name: str | None = None,
) -> ChatClient:
    """One session of the person (``kind`` names it: ``cli-chat``, ``cli-listen``, ...), so
    several commands at once never take each other over."""
    client = ChatClient(
        session.stack,
        session.identity,
        protocol=protocol,
        on_event=on_event,
        session=kind,
        name=name,
        name_wait=WHOIS_WAIT,
    )
    try:
        return client.start()
    except StackUnreachable as exc:
        raise CliFailure(EXIT_CONNECT, str(exc)) from None
    except AuthError as exc:
        raise CliFailure(EXIT_AUTH, f"credentials refused: {exc}") from None
    except ConnectError as exc:
        raise CliFailure(
            EXIT_CONNECT, f"could not connect to {session.stack.iot_host}: {exc}"
        ) from None


# ---------------------------------------------------------------------------------- formatting


def _clock(ts: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts / 1000))


def who_is(person: str, name: str | None, handle: str | None = None, guest: bool = False) -> str:
    """How a person is shown: the stored display name and ``@handle`` (the handle is unique,
    the name is not), a guest marked as one. Without a profile yet, the short person id."""
    if handle:
        shown = f"{name} @{handle}" if name and name != handle else f"@{handle}"
    else:
        short = person.rsplit(":", 1)[-1][:8]
        shown = f"{name} ({short})" if name else short
    return f"{shown} (guest)" if guest else shown


def _profile(profile: events.Profile) -> str:
    return _printable(who_is(profile.person, profile.name, profile.handle, profile.guest))


def _where(room: str | None, group: str | None) -> str:
    return f"#{room}" if room else (f"[{group}]" if group else "@dm")


def line(event: events.Event) -> str | None:
    """One readable line, or None for events not worth a line. Text is printed as text:
    control characters are escaped so nobody can repaint someone else's terminal."""
    if isinstance(event, events.Message):
        where = _where(event.room, event.group)
        sender = _printable(who_is(event.sender, event.name, event.handle, event.guest))
        if event.deleted is not None:
            return f"{_clock(event.ts)} {where} <{sender}> (message deleted)"
        mark = (" (edited)" if event.edited else "") + (" (missed)" if event.replayed else "")
        return f"{_clock(event.ts)} {where} <{sender}> {_printable(event.text)}{mark}"
    if isinstance(event, events.Presence):
        who = _printable(who_is(event.client_id, event.name, event.handle, event.guest))
        return f"{_clock(event.ts)} #{event.room} * {who} is {event.status}"
    if isinstance(event, events.Who):
        names = ", ".join(_who_entry(o) for o in event.online)
        return f"#{event.room} online: {names or 'nobody'}{' (and more)' if event.more else ''}"
    if isinstance(event, events.Group):
        return f"group {event.group} '{_printable(event.name)}': {len(event.members)} member(s)"
    if isinstance(event, events.Invitation):
        name = _printable(event.name)
        return (
            f"* {_profile(event.by)} invites you to the group '{name}' ({event.group}): "
            f"/accept {event.group} or /decline {event.group}"
        )
    if isinstance(event, events.Membership):
        return f"[{event.group}] * {_membership(event)}"
    if isinstance(event, events.Edit):
        return f"{_where(event.room, event.group)} * a message was edited: {_printable(event.text)}"
    if isinstance(event, events.Delete):
        return f"{_where(event.room, event.group)} * a message was deleted"
    if isinstance(event, events.ChatError):
        return f"error: {_printable(event.message or event.code)} ({event.code})"
    if isinstance(event, events.Disconnected):
        return f"* disconnected ({event.reason}); reconnecting"
    if isinstance(event, events.Connected) and event.resumed:
        return "* reconnected"
    return None


def _who_entry(entry: Mapping[str, object]) -> str:
    profile = events.profile(entry)
    return _profile(profile) if profile else "?"


def _membership(event: events.Membership) -> str:
    who = _profile(event.person)
    by = f" by {_profile(event.by)}" if event.by and event.by.person != event.person.person else ""
    if event.event == "renamed":
        actor = _profile(event.by or event.person)
        return f"{actor} renamed the group to '{_printable(event.name or '')}'"
    verbs = {"invited": "was invited", "joined": "joined", "declined": "declined the invitation"}
    verbs |= {"left": "left", "removed": "was removed"}
    return f"{who} {verbs.get(event.event, _printable(event.event))}{by}"


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def emit(event: events.Event, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(events.to_json(event), ensure_ascii=False) + "\n")
    else:
        if isinstance(event, events.History):
            for message in reversed(event.messages):  # oldest first, as a terminal reads
                out.write(f"{line(message)}\n")
            return
        text = line(event)
        if text is None:
            return
        if isinstance(event, events.ChatError):
            sys.stderr.write(text + "\n")
            return
        out.write(text + "\n")
    out.flush()


# ---------------------------------------------------------------------------------- commands


HANDLE_RULE = re.compile(r"[a-z0-9_-]{3,32}")


def check_handle(handle: str) -> str:
    """A handle as docs/protocol.md allows it (the backend checks again), or a CliFailure."""
    if not HANDLE_RULE.fullmatch(handle) or handle.startswith("guest-"):
        raise CliFailure(
            EXIT_USAGE,
            f"'{_printable(handle)}' cannot be a handle: 3-32 of a-z 0-9 _ -, "
            "not starting with guest-",
        )
    return handle


def signup(
    stack_file: Path | None,
    session_file: Path | None,
    email: str,
    password: str,
    code: str | None,
    ask_code: Callable[[str | None], str],
    handle: str | None = None,
) -> str:
    """Register, confirm with the code (``ask_code(outbox hint)`` when not given), sign in."""
    stack = load_stack(stack_file)
    try:
        sign_up(stack, email, password, check_handle(handle) if handle else None)
        if code is None:
            outbox = stack.path.resolve().parent / "cognito" / "outbox.jsonl"
            code = ask_code(str(outbox) if stack.is_local else None)
        confirm_sign_up(stack, email, code.strip())
        return Identity.sign_in(stack, email, password, SessionFile(session_file)).identity_id
    except StackUnreachable as exc:
        raise CliFailure(EXIT_CONNECT, str(exc)) from None
    except AuthError as exc:
        raise CliFailure(EXIT_AUTH, str(exc)) from None


def login(stack_file: Path | None, session_file: Path | None, email: str, password: str) -> str:
    stack = load_stack(stack_file)
    try:
        return Identity.sign_in(stack, email, password, SessionFile(session_file)).identity_id
    except StackUnreachable as exc:
        raise CliFailure(EXIT_CONNECT, str(exc)) from None
    except AuthError as exc:
        raise CliFailure(EXIT_AUTH, str(exc)) from None


def logout(stack_file: Path | None, session_file: Path | None) -> None:
    """Forget the stack's signed-in user; the guest identity stays."""
    stack = load_stack(stack_file)
    sessions = SessionFile(session_file)
    entry = sessions.load(stack.identity_pool_id)
    entry.pop("user", None)
    sessions.save(stack.identity_pool_id, entry)


def send(
    session: Session, room: str, text: str, name: str | None, protocol: str, timeout: float
) -> str:
    """Post and wait until the room echoes the message back (or the chat refuses it); the
    outbox sends it again meanwhile if the connection drops or the echo is late."""
    client = connect(session, protocol, kind="cli-send", name=name)
    try:
        # The backend knows who we are (hello's answer) before the message is seen, so
        # readers who ask see our stored name and handle, not a default one.
        client.wait_for(
            lambda e: (
                (isinstance(e, events.Profile) and e.person == client.person)
                or (isinstance(e, events.ChatError) and e.ref is None)
            ),  # hello refused: go on
            min(timeout, PROFILE_WAIT),
        )
        client.watch(room)
        message_id = client.say(room, text, name=name)

        def outcome(event: events.Event) -> bool:
            return (isinstance(event, events.Message) and event.id == message_id) or (
                isinstance(event, events.ChatError) and event.ref == message_id
            )

        result = client.wait_for(outcome, timeout)
    finally:
        client.stop()
    if result is None:
        raise CliFailure(EXIT_CONNECT, f"no confirmation within {timeout:.0f} s")
    if isinstance(result, events.ChatError):
        raise CliFailure(EXIT_REFUSED, f"refused: {result.message} ({result.code})")
    return message_id


def listen(
    session: Session,
    rooms: list[str],
    as_json: bool,
    name: str | None,
    protocol: str,
    out: TextIO = sys.stdout,
) -> None:
    """Print until Ctrl-C; rooms are joined (history first), the inbox is always heard.

    A join the chat refuses ends the command with its error and exit code 1: listening to a
    room one is not in would print nothing forever."""
    client = connect(session, protocol, kind="cli-listen", name=name)
    try:
        joins = {client.join(room, name): room for room in rooms}
        for event in client.events():
            refused = isinstance(event, events.ChatError) and event.ref in joins
            if as_json or not refused:
                emit(event, as_json, out)
            if isinstance(event, events.ChatError) and event.ref in joins:
                room = _printable(joins[event.ref])
                raise CliFailure(
                    EXIT_REFUSED, f"could not join '{room}': {event.message} ({event.code})"
                )
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()
