"""``iotchat chat`` starts with the person's rooms from hello's answer (docs/protocol.md):
rooms joined in an earlier session show, and are followed, in the next one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from client.chat_client import ChatClient
from tests.cli.test_interactive import Terminal, _say_and_confirm
from tests.cli.test_terminal import cli_env
from tests.support.stack import InProcessStack


@pytest.fixture
def same_person(chat_stack: InProcessStack, tmp_path: Path) -> Iterator[Callable[..., Terminal]]:
    """``iotchat chat`` runs that all sign in as one guest (one session file)."""
    opened: list[Terminal] = []
    env = cli_env(chat_stack, tmp_path, "ada")

    def open_(*args: str) -> Terminal:
        opened.append(Terminal(list(args), env))
        return opened[-1]

    yield open_
    for term in opened:
        term.close()


def test_a_new_chat_session_shows_and_follows_the_rooms_joined_before(
    same_person: Callable[..., Terminal], new_client: Callable[..., ChatClient]
) -> None:
    first, second, left, now = (f"tty-{uuid.uuid4().hex[:8]}" for _ in range(4))
    term = same_person("--room", first)
    term.expect(rf"#{first}>")
    for room in (second, left):
        term.type(f"/join {room}\r")
        term.expect(rf"you are in #{room}")
        term.expect(rf"this is the start of #{room}")  # the join's answer: it is stored
    term.type(f"/leave {left}\r")
    term.expect(rf"you left #{left}")
    term.type("/quit\r")
    assert term.exit_status() == 0

    again = same_person("--room", now)
    shown = again.expect(r"\* your rooms: ([^\n]*)").group(1)
    assert f"#{first}" in shown and f"#{second}" in shown, shown
    assert f"#{left}" not in shown, shown  # left in the first session: gone for the person
    again.expect(rf"#{now}>")
    # Followed, not only listed: what Bob says in a room from the earlier session arrives.
    bob = new_client(name="Bob")
    bob.join(first)
    _say_and_confirm(bob, first, "while you were elsewhere")
    again.expect(rf"#{first} <[^>\n]*@guest-\w+ \(guest\)> while you were elsewhere")
    again.expect(rf"\| unread #{first} 1 \|")
    again.type("/quit\r")
    assert again.exit_status() == 0
