"""``iotchat chat`` as a person uses it: a real pseudo-terminal of 80x24, keys typed into it,
the screen read back, and another chat client on the same local stack at the other end."""

from __future__ import annotations

import fcntl
import os
import re
import struct
import subprocess
import sys
import termios
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client import events
from client.chat_client import ChatClient
from tests.cli.test_terminal import cli_env
from tests.support.stack import InProcessStack
from tests.support.waiting import wait_for

CLI = [sys.executable, "-m", "cli.main"]
# CSI / OSC / charset / keypad sequences the line editor draws with; what is left is the text.
ESCAPES = re.compile(
    r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[()][0-9A-Z]|[=>78])"
)


class Terminal:
    """``iotchat chat`` on a pseudo-terminal; its screen output is collected on a thread."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        self.process = subprocess.Popen(
            [*CLI, "chat", *args],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env={**env, "TERM": "xterm"},
            start_new_session=True,
        )
        os.close(slave)
        self.master = master
        self._raw = bytearray()
        self._position = 0  # expect() looks only after what it matched last
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.master, 65536)
            except OSError:  # EIO once the child has gone
                return
            if not chunk:
                return
            self._raw += chunk
            # Answer "where is the cursor?" as a terminal does (bottom row), so the line
            # editor knows the room below the prompt and draws its status line.
            for _ in range(chunk.count(b"\x1b[6n")):
                os.write(self.master, b"\x1b[24;1R")

    def screen(self) -> str:
        return ESCAPES.sub("", bytes(self._raw).decode(errors="replace")).replace("\r", "")

    def expect(self, pattern: str, timeout: float = 20.0) -> re.Match[str]:
        """Wait for ``pattern`` past the last match, then move past it."""
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            return regex.search(self.screen(), self._position)

        try:
            match = wait_for(found, timeout=timeout)
        except AssertionError:
            raise AssertionError(
                f"{pattern!r} not on screen; after position {self._position}:\n"
                + self.screen()[self._position :]
            ) from None
        self._position = match.end()
        return match

    def exit_status(self, timeout: float = 15.0) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running; screen:\n{self.screen()}") from None

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        os.close(self.master)


@pytest.fixture
def terminal(chat_stack: InProcessStack, tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    opened: list[Terminal] = []

    def open_(*args: str) -> Terminal:
        opened.append(Terminal(list(args), cli_env(chat_stack, tmp_path, f"tty{len(opened)}")))
        return opened[-1]

    yield open_
    for term in opened:
        term.close()


def _message(client: ChatClient, **fields: object) -> events.Message:
    def matches(event: events.Event) -> bool:
        return isinstance(event, events.Message) and all(
            getattr(event, k) == v for k, v in fields.items()
        )

    found = client.wait_for(matches, timeout=20)
    assert isinstance(found, events.Message), f"no message with {fields}"
    return found


def _session_of(broker: Any, person: str) -> Any:
    """The gateway's connection of the one session ``person`` has open (its client id is the
    person's id and a session part)."""
    (conn,) = [c for cid, c in broker.connections.items() if cid.startswith(f"{person}_")]
    return conn


def _say_and_confirm(client: ChatClient, room: str, text: str) -> None:
    message_id = client.say(room, text, name="Bob")
    _message(client, id=message_id)


def _stored(client: ChatClient, room: str, ok: Callable[[events.History], bool]) -> None:
    """Ask for the room's newest page until ``ok`` holds: messages are stored a little after
    the room carries them, and a late joiner sees only what is stored."""

    def page() -> bool:
        client.history(room=room)
        found = client.wait_for(
            lambda e: isinstance(e, events.History) and e.target == room, timeout=5
        )
        return isinstance(found, events.History) and ok(found)

    wait_for(page, timeout=20, interval=0.2)


def test_chat_history_both_directions_who_dm_reconnect_bad_room_and_quit(
    terminal: Callable[..., Terminal],
    new_client: Callable[..., ChatClient],
    chat_stack: InProcessStack,
) -> None:
    room = f"tty-{uuid.uuid4().hex[:8]}"
    bob = new_client(name="Bob")
    bob.join(room)
    _say_and_confirm(bob, room, "said before you came")
    _stored(bob, room, lambda page: len(page.messages) == 1)

    term = terminal("--room", room, "--name", "Alice")
    alice_id = term.expect(r"connected to \S+ as ([A-Za-z0-9:_-]+)").group(1)
    term.expect(rf"#{room} <Bob @guest-\w+ \(guest\)> said before you came")  # history on join
    term.expect(rf"#{room}>")  # the prompt names the current room

    term.type("hello from the terminal\r")
    heard = _message(bob, text="hello from the terminal")
    assert (heard.sender, heard.name, heard.room) == (alice_id, "Alice", room)
    assert heard.guest and (heard.handle or "").startswith("guest-")
    term.expect(rf"#{room} <Alice @guest-\w+ \(guest\)> hello from the terminal")

    _say_and_confirm(bob, room, "hi \x1b[2J back")  # a screen-clearing escape stays text
    term.expect(rf"#{room} <Bob @guest-\w+ \(guest\)> " + re.escape("hi \\x1b[2J back"))

    term.type("/who\r")
    online = term.expect(rf"#{room} online: ([^\n]*)").group(1)
    assert "Alice @guest-" in online and "Bob @guest-" in online

    # A guest's direct message is refused in words before anything is sent (sessions_terminal
    # tests the signed-in one); the room goes on.
    term.type("/dm @someone psst\r")
    term.expect(r"error: direct messages and private groups need a signed-in account")
    term.expect(r"iotchat signup")
    gateway = chat_stack.stack.gateway
    assert gateway is not None  # the stack is up
    broker = gateway.broker
    chat_stack.call(lambda: broker.close(_session_of(broker, alice_id), "CONNECTION_LOST"))
    term.expect(r"\* disconnected \(")
    term.expect(r"\* reconnected")
    term.type("still here\r")  # and the chat goes on
    _message(bob, text="still here")

    term.type("/join bad room\r")
    term.expect(r"error: 'bad room' is not a room name")
    term.type("/frobnicate\r")
    term.expect(r"error: unknown command /frobnicate")
    term.expect(rf"#{room}>")  # still chatting in the same room

    term.type("/quit\r")
    assert term.exit_status() == 0


def test_chat_older_history_room_switch_and_ctrl_c(
    terminal: Callable[..., Terminal], new_client: Callable[..., ChatClient]
) -> None:
    first, second = (f"tty-{uuid.uuid4().hex[:8]}" for _ in range(2))
    bob = new_client(name="Bob")
    bob.join(second)
    for i in range(51):  # one more than the page a join shows; one at a time keeps ts ordered
        _message(bob, id=bob.say(second, f"number {i:02d}", name="Bob"))
    _stored(bob, second, lambda page: len(page.messages) == 50 and page.cursor is not None)

    term = terminal("--room", first)
    me = term.expect(r"connected to \S+ as ([A-Za-z0-9:_-]+)").group(1)
    term.expect(rf"you are in #{first}")
    term.expect(rf"#{first}>")
    term.type(f"/join {second}\r")
    term.expect(rf"#{second} <Bob @guest-\w+ \(guest\)> number 01\n")  # the newest 50, oldest first
    term.expect(rf"#{second} <Bob @guest-\w+ \(guest\)> number 50\n")
    term.expect(rf"#{second}>")
    term.type("/history\r")
    term.expect(rf"1 older message\(s\) in #{second}\n[^\n]*<Bob @guest-\w+ \(guest\)> number 00\n")
    term.type("/history\r")
    term.expect(rf"no older messages in #{second}")

    term.type("never sent")
    term.expect("never sent")  # drawn on the input line (the terminal itself echoes nothing)
    typing = bob.wait_for(
        lambda e: isinstance(e, events.Activity) and e.room == second and me in e.typing,
        timeout=20,
    )
    assert typing is not None, "typing in the terminal did not reach the room"
    bob.typing(second)
    term.expect(r"Bob @guest-\w+ \(guest\) typing")  # the status line under the prompt
    term.type("\x03")  # Ctrl-C with text: the line is cleared, the chat goes on
    term.type("kept\r")
    assert _message(bob, room=second, text="kept").text == "kept"

    term.type("\x03")  # Ctrl-C on an empty line: leave
    assert term.exit_status() == 0


def test_device_commands_go_to_the_room_and_errors_are_words(
    terminal: Callable[..., Terminal],
    new_client: Callable[..., ChatClient],
    chat_stack: InProcessStack,
) -> None:
    room = f"tty-{uuid.uuid4().hex[:8]}"
    bob = new_client(name="Bob")
    bob.join(room)
    term = terminal("--room", room, "--name", "Alice")
    alice_id = term.expect(r"connected to \S+ as ([A-Za-z0-9:_-]+)").group(1)
    term.expect(rf"#{room}>")

    term.type("/status\r")  # what a device in the room answers: said, not refused
    assert _message(bob, room=room, text="/status").sender == alice_id
    term.type("@pi-kitchen /status\r")
    _message(bob, room=room, text="@pi-kitchen /status")
    term.type("/stats\r")  # a typo is still refused, with the way to say it anyway
    term.expect(r"error: unknown command /stats \(/help lists them; //stats says it to the room\)")
    term.type("//stats\r")
    _message(bob, room=room, text="/stats")

    gateway = chat_stack.stack.gateway
    assert gateway is not None  # the stack is up
    broker = gateway.broker
    taken_over = 0x8E  # what AWS IoT sends the older of two connections with one client id
    chat_stack.call(
        lambda: broker.close(_session_of(broker, alice_id), "DUPLICATE_CLIENTID", taken_over)
    )
    term.expect(r"\* disconnected \(another connection with the same client id took this one ")
    term.expect(r"\* reconnected")
    term.type("/quit\r")
    assert term.exit_status() == 0
    assert "AWS_ERROR" not in term.screen()


def test_unread_counts_per_room_in_the_status_line_and_in_rooms(
    terminal: Callable[..., Terminal], new_client: Callable[..., ChatClient]
) -> None:
    first, second = (f"tty-{uuid.uuid4().hex[:8]}" for _ in range(2))
    bob = new_client(name="Bob")
    for room in (first, second):
        bob.join(room)
    term = terminal("--room", first)
    term.expect(rf"#{first}>")
    # The join's (empty) page first: one that came after Bob spoke would hold his messages as
    # history, which counts nothing unread.
    term.expect(rf"\* this is the start of #{first}")
    term.type(f"/join {second}\r")
    term.expect(rf"you are in #{second}")
    term.expect(rf"#{second}>")
    _say_and_confirm(bob, first, "one")
    _say_and_confirm(bob, first, "two")
    term.expect(rf"#{first} <Bob @guest-\w+ \(guest\)> two")  # shown, and counted
    term.expect(rf"\| unread #{first} 2 \|")  # the status line under the prompt
    term.type("/rooms\r")
    term.expect(rf"\* rooms: #{first} \(2 unread\), #{second} \(current\)")
    term.type(f"/join {first}\r")  # going there reads them
    term.expect(rf"current room: #{first}")
    _say_and_confirm(bob, second, "three")
    term.expect(rf"\| unread #{second} 1 \|")
    term.type("/rooms\r")
    term.expect(rf"\* rooms: #{first} \(current\), #{second} \(1 unread\)")
    term.type("/quit\r")
    assert term.exit_status() == 0
