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
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from cli.terminal import SIGN_IN_HINT, Session, _printable, connect, line, who_is
from client import events
from client.chat_client import ChatClient, SignInRequired, valid_room
from client.reasons import describe_error

PERSON_ID = re.compile(r"[A-Za-z0-9:_-]{1,128}")
HANDLE = re.compile(r"@?([a-z0-9_-]{3,64})")
OWN_KEPT = 20  # own messages per conversation that /edit and /delete can reach
GROUP_ID = re.compile(r"g-[0-9a-f]{32}")
TYPING_EVERY = 3.0  # seconds between two `typing` stream events from us
TYPING_SHOWN = 6.0  # how long someone stays "typing" in the status line
# AWS IoT allows 50 subscriptions per connection
# (https://docs.aws.amazon.com/general/latest/gr/iot-core.html#message-broker-limits); two are
# the person's inbox and this session's replies.
MAX_ROOMS = 48
# What devices in a room answer (client/edge/agent.py): typed bare, they go to the room as said.
DEVICE_COMMANDS = frozenset({"/status"})
PRIVATE_COMMANDS = frozenset({"/dm", "/group", "/g", "/accept", "/decline"})

HELP = """\
commands (anything else is said in the current room; start with // to say a leading /):
  /join ROOM              join ROOM (or switch to it) and make it the current room
  /leave [ROOM]           leave ROOM (default: the current room)
  /rooms                  the rooms you are in, with unread counts
  /who [ROOM]             who is online in ROOM
  /history [ROOM]         an older page of ROOM's messages
  /edit TEXT              replace the text of your last message in the current room
  /delete                 delete your last message in the current room
  /name NAME              your display name, shown to everyone
  /status                 ask every device in the room for its status
  @DEVICE /status         ask one device (also @DEVICE /help)
signed-in accounts only (guests: public rooms):
  /dm @HANDLE TEXT        a direct message
  /group create NAME [@HANDLE...]  a private group; the people named are invited
  /group invite GROUP @HANDLE      invite someone (GROUP: its id or its name)
  /accept GROUP, /decline GROUP    answer an invitation
  /group leave GROUP               leave a group
  /group remove GROUP @HANDLE      remove a member (the group's creator)
  /group rename GROUP NAME         rename a group (the group's creator)
  /g GROUP TEXT           say something in a group
  /help                   this list
  /quit                   leave the chat (also Ctrl-D, or Ctrl-C on an empty line)"""


class UsageError(Exception):
    """A command typed wrong; its message is the line shown to the user."""


@dataclass
class _Typing:
    room: str
    until: float


class ChatTerminal:
    """The chat's state as the user sees it: current room, cursors, unread counts, who types.

    Events arrive on a pump thread and input on the prompt's thread, so shared state is
    guarded by one lock; ``say`` prints one line above the prompt. Names come from the chat
    client's directory (stored profiles), never from what a message claims.
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
        self._groups: dict[str, str] = {}  # group id -> display name (member or invited)
        self._typing: dict[str, _Typing] = {}
        self._unread: dict[str, int] = {}  # room -> messages from others since last there
        self._own: dict[str, deque[events.Message]] = {}  # conversation -> our last messages
        self._last_typing = 0.0
        self._told_belongings = False  # hello's rooms and groups are shown once, not per reconnect

    # ------------------------------------------------------------------ what the user sees

    def prompt(self) -> str:
        return f"#{self.current}> " if self.current else "(no room)> "

    def toolbar(self) -> str:
        now = time.monotonic()
        with self._lock:
            typing = [
                person
                for person, t in self._typing.items()
                if t.room == self.current and t.until > now
            ]
            unread = [(room, n) for room, n in self._unread.items() if n and room != self.current]
        parts = [self.status, f"#{self.current}" if self.current else "no room"]
        if unread:
            parts.append("unread " + ", ".join(f"#{room} {n}" for room, n in unread[:4]))
        if typing:
            names = ", ".join(self._who(person) for person in typing[:3])
            parts.append(names + (" ..." if len(typing) > 3 else "") + " typing")
        return " " + " | ".join(parts) + " | /help"

    def unread(self) -> dict[str, int]:
        with self._lock:
            return {room: n for room, n in self._unread.items() if n}

    def show(self, event: events.Event) -> None:
        """Print one event (called on the pump thread)."""
        if isinstance(event, events.History):
            self._show_history(event)
            return
        self._remember(event)
        if isinstance(event, events.Activity | events.People | events.Profile):
            if isinstance(event, events.Profile) and event.person != self.client.person:
                return
            if isinstance(event, events.Profile) and event.name:
                self._say(f"* you are {self._who(event.person)}")
            if isinstance(event, events.Profile):
                self._belongings(event)
            return
        if isinstance(event, events.Disconnected):
            self.status = "reconnecting"
        elif isinstance(event, events.Connected):
            self.status = "connected"
        text = line(event)
        if text is None:
            return
        if isinstance(event, events.Message) and event.to and event.sender == self.client.person:
            text += f" (to {self._who(event.to)})"
        if isinstance(event, events.Edit | events.Delete):
            text = text.replace(" * a message", f" * {self._who(event.sender)}'s message", 1)
        if isinstance(event, events.ChatError) and event.code == "SIGN_IN_REQUIRED":
            text += f"; {SIGN_IN_HINT}"
        self._say(text)

    def _belongings(self, answer: events.Profile) -> None:
        """Hello's answer lists the rooms and groups the person is in, wherever they joined
        them: the rooms are followed (up to what one connection can subscribe to) and both
        are shown once."""
        if answer.rooms is None and answer.groups is None:
            return  # a rename or another answer: not hello's
        with self._lock:
            first, self._told_belongings = not self._told_belongings, True
        if answer.groups is not None:
            with self._lock:
                self._groups.update(dict(answer.groups))
            if answer.groups and first:
                names = ", ".join(_printable(name) for _, name in answer.groups[:20])
                self._say(f"* your groups: {names}")
        if answer.rooms is None:
            return
        rooms = [r for r in answer.rooms if valid_room(r)]
        for room in rooms:
            if room not in self.client.rooms and len(self.client.rooms) < MAX_ROOMS:
                self.client.watch(room)
        if rooms and first:
            shown = ", ".join(f"#{r}" for r in rooms)
            self._say(f"* your rooms: {shown} (/join ROOM to switch, /rooms for unread)")

    def _show_history(self, event: events.History) -> None:
        older = False
        if event.kind == "room":
            with self._lock:
                self._cursors[event.target] = event.cursor
                older = event.target in self._older
                self._older.discard(event.target)
        for message in event.messages:
            self._remember(message, live=False)
        if older:
            count = len(event.messages)
            self._say(
                f"* {count} older message(s) in #{event.target}"
                if count
                else f"* no older messages in #{event.target}"
            )
        elif event.kind == "room" and not event.messages:
            self._say(f"* this is the start of #{event.target}")
        for message in reversed(event.messages):  # oldest first, as a terminal reads
            self._say(line(message) or "")

    def _remember(self, event: events.Event, live: bool = True) -> None:
        with self._lock:
            if isinstance(event, events.Message):
                self._typing.pop(event.sender, None)
                if event.sender == self.client.person:
                    kept = self._own.setdefault(_conversation(event), deque(maxlen=OWN_KEPT))
                    if all(m.id != event.id for m in kept):
                        kept.append(event)
                elif live and event.room and event.room != self.current:
                    self._unread[event.room] = self._unread.get(event.room, 0) + 1
            elif isinstance(event, events.Group | events.Invitation | events.Membership):
                if event.name:
                    self._groups[event.group] = event.name
            elif isinstance(event, events.Delete):
                for kept in self._own.values():
                    for message in [m for m in kept if m.id == event.id]:
                        kept.remove(message)
            elif isinstance(event, events.Activity):
                now = time.monotonic()
                for person in [c for c, t in self._typing.items() if t.until <= now]:
                    del self._typing[person]
                until = now + TYPING_SHOWN
                for person in event.typing:
                    if person != self.client.person:
                        self._typing[person] = _Typing(event.room, until)

    def _who(self, person: str) -> str:
        profile = self.client.directory.get(person)
        if profile is None:
            return _printable(who_is(person, None))
        return _printable(who_is(person, profile.name, profile.handle, profile.guest))

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
        except SignInRequired as exc:
            self._say(f"error: {exc}; {SIGN_IN_HINT}")
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
        if command in PRIVATE_COMMANDS and not self.client.private_allowed:
            raise SignInRequired()  # said before any argument is read: the feature needs it
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
            "/accept": lambda rest: self.client.accept(self._group_id(rest)),
            "/decline": lambda rest: self.client.decline(self._group_id(rest)),
            "/g": self._group_say,
            "/edit": self._edit,
            "/delete": self._delete,
            "/name": self._name,
            "/help": lambda _: self._say(HELP),
        }

    def join(self, room: str) -> None:
        self.client.join(room, self.name)
        self._switch(room)
        self._say(f"* you are in #{room}")

    def _switch(self, room: str) -> None:
        with self._lock:
            self.current = room
            self._unread.pop(room, None)

    def _join(self, rest: str) -> None:
        room = self._room(rest, default=None)
        if room in self.client.rooms:
            self._switch(room)
            self._say(f"* current room: #{room}")
            return
        self.join(room)

    def _leave(self, rest: str) -> None:
        room = self._room(rest, default=self.current)
        if room not in self.client.rooms:
            raise UsageError(f"you are not in #{room}")
        self.client.leave(room)
        self._say(f"* you left #{room}")
        with self._lock:
            self._unread.pop(room, None)
        if self.current == room:
            remaining = list(self.client.rooms)
            self.current = remaining[-1] if remaining else None
            if self.current:
                self._switch(self.current)
                self._say(f"* current room: #{self.current}")

    def _rooms(self, rest: str) -> None:
        unread = self.unread()
        rooms = [
            f"#{r}"
            + (" (current)" if r == self.current else "")
            + (f" ({unread[r]} unread)" if unread.get(r) else "")
            for r in self.client.rooms
        ]
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
        target, text = _target_and_text(rest, "usage: /dm @HANDLE TEXT")
        self.client.direct(self._person(target), text, self.name)

    def _group(self, rest: str) -> None:
        words = rest.split()
        verb, args = (words[0], words[1:]) if words else ("", [])
        if verb == "create" and args:
            self.client.create_group(args[0], [self._person(w) for w in args[1:]])
            self._say(f"* creating group '{_printable(args[0])}'")
        elif verb == "invite" and len(args) == 2:
            self.client.invite(self._group_id(args[0]), self._person(args[1]))
        elif verb == "leave" and len(args) == 1:
            self.client.leave_group(self._group_id(args[0]))
        elif verb == "remove" and len(args) == 2:
            self.client.remove(self._group_id(args[0]), self._person(args[1]))
        elif verb == "rename" and len(args) >= 2:
            self.client.rename(self._group_id(args[0]), " ".join(args[1:]))
        else:
            raise UsageError(
                "usage: /group create NAME [@HANDLE...] | invite GROUP @HANDLE | leave GROUP"
                " | remove GROUP @HANDLE | rename GROUP NAME"
            )

    def _group_say(self, rest: str) -> None:
        group, text = _target_and_text(rest, "usage: /g GROUP TEXT")
        self.client.group_say(self._group_id(group), text, self.name)

    def _last_own(self) -> events.Message:
        room = self._need_room()
        with self._lock:
            kept = self._own.get(f"room:{room}")
            if not kept:
                raise UsageError(f"you have said nothing in #{room} that can be changed")
            return kept[-1]

    def _edit(self, rest: str) -> None:
        if not rest:
            raise UsageError("usage: /edit TEXT (replaces your last message here)")
        self.client.edit(self._last_own(), rest)

    def _delete(self, rest: str) -> None:
        self.client.delete(self._last_own())

    def _name(self, rest: str) -> None:
        if not rest or len(rest) > 64:
            raise UsageError("usage: /name NAME (1-64 characters)")
        self.name = rest
        self.client.set_name(rest)
        self._say(f"* asking to be called {_printable(rest)}")

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

    def _person(self, token: str) -> str:
        """Whom the user means: ``@handle`` (or a handle), a person id, or a display name seen
        in the chat; the chat is addressed by handle."""
        if ":" in token and PERSON_ID.fullmatch(token):
            return token
        found = self.client.directory.find(token)
        handles = {p.handle for p in found if p.handle}
        if len(handles) == 1:
            return handles.pop()
        if len(handles) > 1:
            raise UsageError(f"'{_printable(token)}' is several people; use their @handle")
        match = HANDLE.fullmatch(token)
        if match:
            return match.group(1)
        raise UsageError(f"'{_printable(token)}' is not a @handle")

    def _group_id(self, token: str) -> str:
        token = token.strip()
        if GROUP_ID.fullmatch(token):
            return token
        with self._lock:
            matches = [gid for gid, name in self._groups.items() if name == token]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UsageError(f"several groups are called '{_printable(token)}'; use the id")
        raise UsageError(f"no group '{_printable(token)}' (use its id, g-...)")


def _conversation(message: events.Message) -> str:
    if message.room:
        return f"room:{message.room}"
    return f"group:{message.group}" if message.group else f"with:{message.to}"


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
        client = connect(session, protocol, kind="cli-chat", name=name)
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

    print(f"* connected to {host} as {client.person}")
    if not client.signed_in:
        print("* you are a guest: public rooms only; direct messages and groups need an account:")
        print(f"  {SIGN_IN_HINT}")
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
