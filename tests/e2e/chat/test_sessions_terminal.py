"""One person, many sessions, as people run them (issues 15 and 16): ``iotchat chat`` on a
pseudo-terminal, ``iotchat listen --json``, repeated ``iotchat send`` and an awsiotsdk client,
all signed in as the same person on a real local stack; then what a signed-in person does in
the terminal (direct messages and invitations by handle, edits and deletions) and what a guest
is told instead."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client import events
from client.chat_client import ChatClient
from client.identity import Identity, SessionFile
from client.stack_file import StackInfo, load_stack_file
from tests.cli.test_interactive import Terminal, terminal
from tests.cli.test_terminal import CLI, Lines, cli_env, run_cli
from tests.support.cognito import PASSWORD, new_user
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for

__all__ = ["terminal"]  # the pty fixture, on this folder's stack

pytestmark = pytest.mark.timeout(240)
TIMEOUT = 30.0


@pytest.fixture
def info(chat_stack: InProcessStack) -> StackInfo:
    return load_stack_file(chat_stack.stack.stack_file)


@pytest.fixture
def clients(info: StackInfo, tmp_path: Path) -> Iterator[Callable[..., ChatClient]]:
    """``open(identity=None, **options)``: a started Python chat client (a guest by default)."""
    started: list[ChatClient] = []

    def open_(identity: Identity | None = None, **options: object) -> ChatClient:
        who = identity or Identity.guest(info, SessionFile(tmp_path / f"g{len(started)}.json"))
        client = ChatClient(info, who, name_wait=5.0, **options)  # type: ignore[arg-type]
        started.append(client.start())
        return client

    yield open_
    for client in started:
        client.stop()


def _person(stack: InProcessStack, info: StackInfo, sessions: Path, handle: str) -> Identity:
    """A signed-in person with ``handle``, kept in the session file the CLI reads."""
    user = new_user(stack, handle=handle)
    return Identity.sign_in(info, user.username, PASSWORD, SessionFile(sessions))


def _handle(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def _room() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def _message(client: ChatClient, **fields: object) -> events.Message:
    def matches(event: events.Event) -> bool:
        return isinstance(event, events.Message) and all(
            getattr(event, k) == v for k, v in fields.items()
        )

    found = client.wait_for(matches, timeout=TIMEOUT)
    assert isinstance(found, events.Message), f"no message with {fields}"
    return found


def _event(client: ChatClient, kind: type, **fields: object) -> events.Event:
    def matches(event: events.Event) -> bool:
        return isinstance(event, kind) and all(getattr(event, k) == v for k, v in fields.items())

    found = client.wait_for(matches, timeout=TIMEOUT)
    assert found is not None, f"no {kind.__name__} with {fields}"
    return found


def _online(observer: ChatClient, room: str) -> list[str]:
    observer.who(room)
    answer = _event(observer, events.Who, room=room)
    assert isinstance(answer, events.Who)
    return [entry.get("person") or entry["clientId"] for entry in answer.online]


def test_chat_listen_sends_and_an_sdk_client_of_one_person_never_knock_each_other_off(
    chat_stack: InProcessStack,
    info: StackInfo,
    tmp_path: Path,
    terminal: Callable[..., Terminal],
    clients: Callable[..., ChatClient],
) -> None:
    room = _room()
    ada_handle, bob_handle = _handle("ada"), _handle("bob")
    ada_sessions = tmp_path / "tty0-sessions.json"  # the one the first pty reads
    ada = _person(chat_stack, info, ada_sessions, ada_handle)
    bob = clients(_person(chat_stack, info, tmp_path / "bob.json", bob_handle), name="Bob")
    observer = clients(name="Olga")
    observer.join(room)
    env = {**cli_env(chat_stack, tmp_path, "ada"), "IOTCHAT_SESSION_FILE": str(ada_sessions)}

    term = terminal("--room", room)
    term.expect(rf"connected to \S+ as {ada.identity_id}")
    term.expect(rf"#{room}>")
    listener = subprocess.Popen(
        [*CLI, "listen", "--room", room, "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert listener.stdout is not None  # stdout=PIPE
    heard = Lines(listener.stdout)
    printed = lambda: [json.loads(line) for line in heard.lines]  # noqa: E731
    sdk_events: list[events.Event] = []
    sdk = clients(Identity.current(info, SessionFile(ada_sessions)), on_event=sdk_events.append)
    sdk.join(room)
    try:
        wait_for(lambda: any(o["event"] == "history" for o in printed()), timeout=TIMEOUT)
        sent = []
        for n in range(3):  # each run is one more session of Ada, arriving and leaving
            result = run_cli(["send", "--room", room, f"send number {n}"], env)
            assert result.returncode == 0, result.stderr
            sent.append(result.stdout.strip())
        for message_id in sent:
            seen = _message(observer, id=message_id)
            assert (seen.sender, seen.handle) == (ada.identity_id, ada_handle)  # one person
            _message(sdk, id=message_id)
            term.expect(rf"<@{ada_handle}> send number \d")
        wait_for(
            lambda: {o["id"] for o in printed() if o["event"] == "message"} >= set(sent),
            timeout=TIMEOUT,
        )
        named = [o for o in printed() if o["event"] == "message" and o["id"] in sent]
        assert {o["handle"] for o in named} == {ada_handle}  # listen prints handles

        # The person's inbox reaches every session: Bob's direct message, by handle.
        direct = bob.direct(ada_handle, "to all of you, Ada")
        _message(sdk, id=direct, to=ada.identity_id)
        wait_for(lambda: any(o.get("id") == direct for o in printed()), timeout=TIMEOUT)
        term.expect(r"@dm <Bob @bob\w+> to all of you, Ada")

        assert _online(observer, room).count(ada.identity_id) == 1  # one person, 3+ sessions
        sdk.stop()
    finally:
        listener.terminate()
        listener.wait(20)
    # Two of her sessions have gone; the terminal is still there, so Ada is still online.
    assert _online(observer, room).count(ada.identity_id) == 1
    offline = observer.wait_for(
        lambda e: isinstance(e, events.Presence) and e.status == "offline", timeout=2
    )
    assert offline is None
    term.type("/quit\r")
    assert term.exit_status() == 0
    gone = _event(observer, events.Presence, client_id=ada.identity_id, status="offline")
    assert isinstance(gone, events.Presence)

    # Nobody was ever taken over: no session saw a disconnect.
    assert "disconnected" not in term.screen()
    assert not [o for o in printed() if o["event"] == "disconnected"]
    assert not [e for e in sdk_events if isinstance(e, events.Disconnected)]


def test_direct_messages_invitations_edits_and_deletions_from_the_terminal(
    chat_stack: InProcessStack,
    info: StackInfo,
    tmp_path: Path,
    terminal: Callable[..., Terminal],
    clients: Callable[..., ChatClient],
) -> None:
    room = _room()
    ada_handle, bob_handle = _handle("ada"), _handle("bob")
    ada = _person(chat_stack, info, tmp_path / "tty0-sessions.json", ada_handle)  # the pty's
    bob = clients(_person(chat_stack, info, tmp_path / "bob.json", bob_handle), name="Bob")
    bob.join(room)
    term = terminal("--room", room, "--name", "Ada")
    term.expect(rf"#{room}>")

    term.type(f"/dm @{bob_handle} psst\r")  # by handle
    direct = _message(bob, text="psst")
    assert (direct.sender, direct.to) == (ada.identity_id, bob.person)
    term.expect(rf"@dm <Ada @{ada_handle}> psst \(to Bob @{bob_handle}\)")

    bob.create_group("ops", [ada_handle])
    invited = term.expect(r"invites you to the group 'ops' \((g-[0-9a-f]{32})\)")
    group = invited.group(1)
    bob.group_say(group, "before you accepted")  # nothing of the group reaches an invitee
    _message(bob, group=group, text="before you accepted")
    term.type("/accept ops\r")
    term.expect(rf"\[{group}\] \* Ada @{ada_handle} joined")
    bob.group_say(group, "welcome in")
    term.expect(rf"\[{group}\] <Bob @{bob_handle}> welcome in")
    term.type("/g ops thanks\r")
    _message(bob, group=group, text="thanks")
    assert "before you accepted" not in term.screen()
    bob.rename(group, "ops-team")
    term.expect(rf"\[{group}\] \* Bob @{bob_handle} renamed the group to 'ops-team'")
    term.type("/group leave ops-team\r")  # the new name is the one it answers to
    left = _event(bob, events.Membership, group=group, event="left")
    assert isinstance(left, events.Membership) and left.person.person == ada.identity_id

    bob.create_group("quiet", [ada_handle])
    quiet = term.expect(r"invites you to the group 'quiet' \((g-[0-9a-f]{32})\)").group(1)
    term.type("/decline quiet\r")
    _event(bob, events.Membership, group=quiet, event="declined")

    term.type("frist\r")
    first = _message(bob, room=room, text="frist")
    term.expect(rf"<Ada @{ada_handle}> frist")
    term.type("/edit first\r")
    edit = _event(bob, events.Edit, id=first.id)
    assert isinstance(edit, events.Edit) and edit.text == "first"
    term.type("oops\r")
    second = _message(bob, room=room, text="oops")
    term.expect(rf"<Ada @{ada_handle}> oops")
    term.type("/delete\r")
    _event(bob, events.Delete, id=second.id)
    term.expect(r"\* Ada @\w+'s message was deleted")

    bob.edit(first, "Bob was here")  # someone else's message: refused
    refused = _event(bob, events.ChatError, code="NOT_OWNER")
    assert isinstance(refused, events.ChatError)

    def page() -> dict[str, events.Message] | None:
        """The room's newest page once it holds both (a join's page may still be queued)."""
        bob.history(room=room)
        found = _event(bob, events.History, target=room)
        assert isinstance(found, events.History)
        by_id = {m.id: m for m in found.messages}
        return by_id if {first.id, second.id} <= set(by_id) else None

    by_id = wait_for(page, timeout=TIMEOUT, interval=0.2)
    assert by_id[first.id].text == "first" and by_id[first.id].edited
    assert by_id[second.id].deleted and by_id[second.id].text == ""
    term.type("/quit\r")
    assert term.exit_status() == 0


def test_a_guest_is_told_in_words_what_needs_an_account_and_keeps_chatting(
    terminal: Callable[..., Terminal], clients: Callable[..., ChatClient]
) -> None:
    room = _room()
    bob = clients(name="Bob")
    bob.join(room)
    term = terminal("--room", room, "--name", "Gus")
    term.expect(r"you are a guest: public rooms only")
    term.expect(rf"#{room}>")
    for typed in ("/dm @someone hi", "/group create club", "/g club hi"):
        term.type(typed + "\r")
        term.expect(
            r"error: direct messages and private groups need a signed-in account "
            r"\(guests can use public rooms\); sign up with `iotchat signup`"
        )
    term.type("public words\r")
    said = _message(bob, room=room, text="public words")
    assert said.guest and said.name == "Gus"
    for bad in ("Gus\u202eevil", "\u200b"):  # a bidi override; only an invisible character
        term.type(f"/name {bad}\r")
        term.expect(r"error: [^\n]*\(INVALID_NAME\)")
    term.type("/name Gustav\r")  # a real change: stored, and what everyone sees from now on
    term.expect(r"\* you are Gustav @guest-\w+ \(guest\)")
    renamed = _event(bob, events.Profile, person=said.sender, name="Gustav")
    assert isinstance(renamed, events.Profile) and renamed.guest
    term.type("new name\r")
    assert _message(bob, room=room, text="new name").name == "Gustav"
    term.type("/quit\r")
    assert term.exit_status() == 0
