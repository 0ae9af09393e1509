"""``iotchat chat``: an interactive chat in a plain terminal (80x24 is enough, over SSH too).

One input line at the bottom (prompt_toolkit, not full screen); everything the chat says is
printed above it as it arrives, formatted by :func:`cli.terminal.line`, so text from others
is always shown as text. Plain lines go to the current room; ``/`` starts a command (``/help``).
The chat client reconnects and fills gaps by itself; this loop only shows that it happened.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from cli.terminal import Session, _printable, connect, line, who_is
from client import events
from client.chat_client import ChatClient, valid_room
from client.reasons import describe_error

CLIENT_ID = re.compile(r"[A-Za-z0-9:_-]{1,128}")
GROUP_ID = re.compile(r"g-[0-9a-f]{32}")
TYPING_EVERY = 3.0  # seconds between two `typing` stream events from us
TYPING_SHOWN = 6.0  # how long someone stays "typing" in the status line
# What devices in a room answer (client/edge/agent.py): typed bare, they go to the room as said.
DEVICE_COMMANDS = frozenset({"/status"})

HELP = """\
commands (anything else is said in the current room; start with // to say a leading /):
  /status                 ask every device in the room for its status
  @DEVICE /status         ask one device (also @DEVICE /help)
  /join ROOM              join ROOM and make it the current room
  /leave [ROOM]           leave ROOM (default: the current room)
  /rooms                  the rooms you are in
  /who [ROOM]             who is online in ROOM
  /history [ROOM]         an older page of ROOM's messages
  /dm CLIENT TEXT         a direct message (CLIENT: an id, its 8-character short form or a name)
  /group create NAME [MEMBER...]   a private group (NAME is one word)
  /group invite GROUP MEMBER       add someone to a group (GROUP: its id or its name)
  /g GROUP TEXT           say something in a group
  /name NAME              the display name shown with what you say
  /help                   this list
  /quit                   leave the chat (also Ctrl-D, or Ctrl-C on an empty line)"""


class UsageError(Exception):
    """A command typed wrong; its message is the line shown to the user."""


@dataclass
class _Typing:
    room: str
    until: float


class ChatTerminal:
    """The chat's state as the user sees it: current room, cursors, who is who.

    Events arrive on a pump thread and input on the prompt's thread, so shared state is
    guarded by one lock; ``say`` prints one line above the prompt.
    """

    def __init__(
        self, client: ChatClient, name: str | None, say: Callable[[str], None] = print
    ) -> None:
        self.client = client
        self.name = name
        self.current: str | None = None
        self.status = "connected"
        self._say = say
        self._lock = threading.Lock()
        self._cursors: dict[str, str | None] = {}  # room -> cursor of its oldest page shown
        self._older: set[str] = set()  # rooms with an older page asked for
        self._names: dict[str, str | None] = {client.client_id: name}
        self._groups: dict[str, str] = {}  # group id -> display name
        self._typing: dict[str, _Typing] = {}
        self._last_typing = 0.0

    # ------------------------------------------------------------------ what the user sees

    def prompt(self) -> str:
        return f"#{self.current}> " if self.current else "(no room)> "

    def toolbar(self) -> str:
        now = time.monotonic()
        with self._lock:
            typing = [
                _printable(who_is(cid, self._names.get(cid)))
                for cid, t in self._typing.items()
                if t.room == self.current and t.until > now
            ]
        parts = [self.status, f"#{self.current}" if self.current else "no room"]
        if typing:
            parts.append(", ".join(typing[:3]) + (" ..." if len(typing) > 3 else "") + " typing")
        return " " + " | ".join(parts) + " | /help"

    def show(self, event: events.Event) -> None:
        """Print one event (called on the pump thread)."""
        if isinstance(event, events.History):
            self._show_history(event)
            return
        self._remember(event)
        if isinstance(event, events.Activity):
            return
        if isinstance(event, events.Disconnected):
            self.status = "reconnecting"
        elif isinstance(event, events.Connected):
            self.status = "connected"
        text = line(event)
        if text is None:
            return
        if isinstance(event, events.Message) and event.to and event.sender == self.client.client_id:
            text += f" (to {self._who(event.to)})"
        self._say(text)

    def _show_history(self, event: events.History) -> None:
        older = False
        if event.kind == "room":
            with self._lock:
                self._cursors[event.target] = event.cursor
                older = event.target in self._older
                self._older.discard(event.target)
        for message in event.messages:
            self._remember(message)
        if older:
            count = len(event.messages)
            self._say(
                f"* {count} older message(s) in #{event.target}"
                if count
                else f"* no older messages in #{event.target}"
            )
        for message in reversed(event.messages):  # oldest first, as a terminal reads
            self._say(line(message) or "")

    def _remember(self, event: events.Event) -> None:
        with self._lock:
            if isinstance(event, events.Message):
                self._learn(event.sender, event.name)
                self._typing.pop(event.sender, None)
            elif isinstance(event, events.Presence):
                self._learn(event.client_id, event.name)
            elif isinstance(event, events.Who):
                for online in event.online:
                    self._learn(online["clientId"], online.get("name"))
            elif isinstance(event, events.Group):
                self._groups[event.group] = event.name
            elif isinstance(event, events.Activity):
                now = time.monotonic()
                for cid in [c for c, t in self._typing.items() if t.until <= now]:
                    del self._typing[cid]
                until = now + TYPING_SHOWN
                for cid in event.typing:
                    if cid != self.client.client_id:
                        self._typing[cid] = _Typing(event.room, until)

    def _learn(self, client_id: str, name: str | None) -> None:
        """Remember a display name; an event without one (a leave) keeps the one we know."""
        if name or client_id not in self._names:
            self._names[client_id] = name

    def _who(self, client_id: str) -> str:
        with self._lock:
            name = self._names.get(client_id)
        return _printable(who_is(client_id, name))

    # ------------------------------------------------------------------ what the user types

    def typed(self, text: str) -> None:
        """The input line changed: tell the room we are typing, at most every few seconds."""
        now = time.monotonic()
        if not text.strip() or text.startswith("/") or self.current is None:
            return
        if now - self._last_typing < TYPING_EVERY:
            return
        self._last_typing = now
        with contextlib.suppress(Exception):  # a lost typing hint is not worth a line
            self.client.typing(self.current)

    def enter(self, text: str) -> bool:
        """Handle one input line; False means quit. Errors become a line, never a traceback."""
        try:
            return self._enter(text.strip())
        except UsageError as exc:
            self._say(f"error: {exc}")
        except Exception as exc:
            self._say(f"error: {describe_error(exc)}")
        return True

    def _enter(self, text: str) -> bool:
        if not text:
            return True
        if not text.startswith("/") or text.startswith("//"):
            room = self._need_room()
            self.client.say(room, text[1:] if text.startswith("//") else text, self.name)
            return True
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        if command in ("/quit", "/exit"):
            return False
        if command.lower() in DEVICE_COMMANDS:
            self.client.say(self._need_room(), text, self.name)
            return True
        handler = self._commands().get(command)
        if handler is None:
            raise UsageError(
                f"unknown command {_printable(command)} (/help lists them; "
                f"//{_printable(command[1:])} says it to the room)"
            )
        handler(rest)
        return True

    def _commands(self) -> dict[str, Callable[[str], None]]:
        return {
            "/join": self._join,
            "/leave": self._leave,
            "/rooms": self._rooms,
            "/who": self._who_cmd,
            "/history": self._history,
            "/dm": self._dm,
            "/group": self._group,
            "/g": self._group_say,
            "/name": self._name,
            "/help": lambda _: self._say(HELP),
        }

    def join(self, room: str) -> None:
        self.client.join(room, self.name)
        self.current = room
        self._say(f"* you are in #{room}")

    def _join(self, rest: str) -> None:
        room = self._room(rest, default=None)
        if room in self.client.rooms:
            self.current = room
            self._say(f"* current room: #{room}")
            return
        self.join(room)

    def _leave(self, rest: str) -> None:
        room = self._room(rest, default=self.current)
        if room not in self.client.rooms:
            raise UsageError(f"you are not in #{room}")
        self.client.leave(room)
        self._say(f"* you left #{room}")
        if self.current == room:
            remaining = list(self.client.rooms)
            self.current = remaining[-1] if remaining else None
            if self.current:
                self._say(f"* current room: #{self.current}")

    def _rooms(self, rest: str) -> None:
        rooms = [f"#{r}" + (" (current)" if r == self.current else "") for r in self.client.rooms]
        self._say("* rooms: " + (", ".join(rooms) if rooms else "none (/join ROOM)"))

    def _who_cmd(self, rest: str) -> None:
        self.client.who(self._room(rest, default=self.current))

    def _history(self, rest: str) -> None:
        room = self._room(rest, default=self.current)
        with self._lock:
            exhausted = room in self._cursors and self._cursors[room] is None
            cursor = self._cursors.get(room)
            if not exhausted:
                self._older.add(room)
        if exhausted:
            self._say(f"* no older messages in #{room}")
            return
        self.client.history(room=room, cursor=cursor)

    def _dm(self, rest: str) -> None:
        target, text = _target_and_text(rest, "usage: /dm CLIENT TEXT")
        self.client.direct(self._client(target), text, self.name)

    def _group(self, rest: str) -> None:
        words = rest.split()
        if len(words) >= 2 and words[0] == "create":
            members = [self._client(w) for w in words[2:]]
            self.client.create_group(words[1], members)
            self._say(f"* creating group '{_printable(words[1])}'")
        elif len(words) == 3 and words[0] == "invite":
            self.client.invite(self._group_id(words[1]), self._client(words[2]))
        else:
            raise UsageError("usage: /group create NAME [MEMBER...] | /group invite GROUP MEMBER")

    def _group_say(self, rest: str) -> None:
        group, text = _target_and_text(rest, "usage: /g GROUP TEXT")
        self.client.group_say(self._group_id(group), text, self.name)

    def _name(self, rest: str) -> None:
        if not rest or len(rest) > 64:
            raise UsageError("usage: /name NAME (1-64 characters)")
        self.name = rest
        with self._lock:
            self._names[self.client.client_id] = rest
        self._say(f"* your name is now {_printable(rest)}")

    # ------------------------------------------------------------------ reading arguments

    def _need_room(self) -> str:
        if self.current is None:
            raise UsageError("you are in no room: /join ROOM first")
        return self.current

    def _room(self, rest: str, default: str | None) -> str:
        room = rest.removeprefix("#") if rest else default
        if room is None:
            raise UsageError("which room? (/join ROOM)")
        if not valid_room(room):
            raise UsageError(
                f"'{_printable(room)}' is not a room name (1-64 letters, digits, _ or -; no spaces)"
            )
        return room

    def _client(self, token: str) -> str:
        """A client id from what people see: the id, its short form, or a display name."""
        with self._lock:
            known = dict(self._names)
        if token in known:
            return token
        matches = {cid for cid, name in known.items() if token in (name, who_is(cid, None))}
        if len(matches) == 1:
            return matches.pop()
        if matches:
            raise UsageError(f"'{_printable(token)}' is ambiguous; use the full client id")
        if CLIENT_ID.fullmatch(token):
            return token
        raise UsageError(f"'{_printable(token)}' is not a client id")

    def _group_id(self, token: str) -> str:
        if GROUP_ID.fullmatch(token):
            return token
        with self._lock:
            matches = [gid for gid, name in self._groups.items() if name == token]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"several groups are called '{_printable(token)}'; use the id")
        raise UsageError(f"no group '{_printable(token)}' (use its id, g-...)")


def _target_and_text(rest: str, usage: str) -> tuple[str, str]:
    """``TARGET TEXT``, both required; the text keeps its inner spaces."""
    target, _, text = rest.partition(" ")
    if not target or not text.strip():
        raise UsageError(usage)
    return target, text.strip()


def _pump(client: ChatClient, chat: ChatTerminal, stopped: threading.Event) -> None:
    while not stopped.is_set():
        for event in client.events(timeout=0.2):
            try:
                chat.show(event)
            except Exception as exc:
                chat._say(f"error: could not show an event: {exc}")
            if stopped.is_set():
                return


def run_chat(session: Session, room: str, name: str | None, protocol: str) -> None:
    """The interactive loop; returns when the user quits (Ctrl-C at any point included)."""
    try:
        client = connect(session, protocol)
    except KeyboardInterrupt:
        return
    try:
        _loop(client, ChatTerminal(client, name), session.stack.iot_host, room)
    except KeyboardInterrupt:
        pass
    finally:
        client.stop()


def _loop(client: ChatClient, chat: ChatTerminal, host: str, room: str) -> None:
    from prompt_toolkit import PromptSession
    from prompt_toolkit.key_binding import KeyBindings, KeyPressEvent
    from prompt_toolkit.patch_stdout import patch_stdout

    print(f"* connected to {host} as {client.client_id}")
    print("* /help lists the commands; /quit or Ctrl-D leaves")
    keys = KeyBindings()

    @keys.add("c-c")
    def _interrupt(event: KeyPressEvent) -> None:
        if event.current_buffer.text:
            event.current_buffer.reset()
        else:
            event.app.exit(exception=EOFError())

    prompt: PromptSession[str] = PromptSession(
        key_bindings=keys, bottom_toolbar=chat.toolbar, refresh_interval=1.0
    )
    prompt.default_buffer.on_text_changed += lambda buffer: chat.typed(buffer.text)
    stopped = threading.Event()
    # The terminal stays raw between two prompts too, so keys typed while a line is being
    # handled (Ctrl-C included) reach the next prompt instead of the terminal driver.
    with patch_stdout(), prompt.input.raw_mode():
        pump = threading.Thread(target=_pump, args=(client, chat, stopped), daemon=True)
        pump.start()
        try:
            chat.join(room)
            while True:
                try:
                    if not chat.enter(prompt.prompt(chat.prompt)):
                        return
                except EOFError:
                    return
                except KeyboardInterrupt:
                    continue
        finally:
            stopped.set()
            pump.join(2)
