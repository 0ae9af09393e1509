"""The edge component's behaviour, whatever carries it: announce, report, answer.

On start the device joins its room and says it is online. Every ``interval`` seconds it posts a
``telemetry`` event to ``chat/stream`` (the backend folds those into the room's ``activity``).
It logs what the room says, and answers ``/status`` and ``/help`` when they are meant for it:
a bare command in its room is for every device there, ``@<thingName> /command`` only for that
one, and a direct message to it is always for it.

It talks to a :class:`~client.chat_client.ChatClient` (any object with the same few methods), so
tests drive it with a fake transport and no network.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .. import events
from . import COMPONENT_VERSION
from .metrics import read_metrics, summary

log = logging.getLogger("iotchat.edge")

TELEMETRY_LIMIT = 2048  # docs/protocol.md: `data` at most 2 KiB serialised
POLL = 0.5  # longest wait between checks of the stop flag


class Chat(Protocol):
    queue: queue.Queue[events.Event]

    @property
    def connected(self) -> bool: ...

    def join(self, room: str, name: str | None = None) -> object: ...
    def say(self, room: str, text: str, name: str | None = None) -> str: ...
    def direct(self, to: str, text: str, name: str | None = None) -> str: ...
    def telemetry(self, room: str, data: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class Command:
    name: str  # without the slash, lower case
    addressed: bool  # @<thingName> prefix, or a direct message


def parse_command(text: str, thing_name: str) -> Command | None:
    """The command in ``text`` if it is for ``thing_name``; None for chat and for other devices."""
    words = text.strip().split()
    addressed = False
    if words and words[0].startswith("@"):
        if words[0][1:] != thing_name:
            return None
        addressed, words = True, words[1:]
    if not words or not words[0].startswith("/") or len(words[0]) < 2:
        return None
    return Command(words[0][1:].lower(), addressed)


def telemetry_data(reading: dict[str, Any]) -> dict[str, Any]:
    """The reading plus ``status``, cut to the protocol's 2 KiB (last keys dropped first)."""
    data = {"status": "online", **reading}
    while len(json.dumps(data, separators=(",", ":")).encode()) > TELEMETRY_LIMIT and data:
        data.pop(next(reversed(data)))
    return data


class EdgeAgent:
    def __init__(
        self,
        chat: Chat,
        thing_name: str,
        room: str,
        interval: float = 60.0,
        *,
        metrics: Callable[[], dict[str, Any]] = read_metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        self.chat = chat
        self.thing_name = thing_name
        self.room = room
        self.interval = interval
        self.metrics = metrics
        self.clock = clock
        self._next_report = 0.0

    # ------------------------------------------------------------------ the steps

    def start(self) -> None:
        """Join the room, say so, and post a first reading at once."""
        self.chat.join(self.room, self.thing_name)
        self.chat.say(self.room, f"{self.thing_name} online ({summary(self.metrics())})")
        log.info(
            "%s joined room %s; telemetry every %g s", self.thing_name, self.room, self.interval
        )
        self.report()

    def report(self) -> dict[str, Any] | None:
        """Post one reading; skipped while offline, so stale readings do not queue up."""
        self._next_report = self.clock() + self.interval
        if not self.chat.connected:
            return None
        data = telemetry_data(self.metrics())
        self.chat.telemetry(self.room, data)
        return data

    def handle(self, event: events.Event) -> None:
        if isinstance(event, events.Message):
            self._message(event)
        elif isinstance(event, events.Connected) and event.resumed:
            log.info("connected again; the room's missed messages follow")
        elif isinstance(event, events.Disconnected):
            log.warning("disconnected: %s", event.reason)
        elif isinstance(event, events.ChatError):
            log.warning("the chat refused a request: %s %s", event.code, event.message)

    def pump(self, timeout: float) -> bool:
        """Report if it is time, then handle at most one event; False when none came."""
        now = self.clock()
        if now >= self._next_report:
            self.report()
        wait = max(0.0, min(timeout, self._next_report - now))
        try:
            event = self.chat.queue.get(timeout=wait) if wait > 0 else self.chat.queue.get_nowait()
        except queue.Empty:
            return False
        self.handle(event)
        return True

    def run(self, stop: threading.Event) -> None:
        """Start, then report and answer until ``stop`` is set."""
        self.start()
        while not stop.is_set():
            self.pump(POLL)

    # ------------------------------------------------------------------ messages

    def _message(self, message: events.Message) -> None:
        where = message.room or ("direct" if message.direct else message.group or "?")
        who = message.name or message.sender
        log.info("[%s] %s: %s", where, who, message.text)
        if message.sender == self.thing_name or message.replayed:
            return  # our own echo, or an old command seen again after a reconnect
        if message.room is not None and message.room != self.room:
            return
        if message.group is not None:
            return
        command = parse_command(message.text, self.thing_name)
        if command is None:
            return
        reply = self._answer(command.name, command.addressed or message.direct)
        if reply is None:
            return
        if message.direct:
            self.chat.direct(message.sender, reply, self.thing_name)
        else:
            self.chat.say(self.room, reply, self.thing_name)

    def _answer(self, name: str, addressed: bool) -> str | None:
        if name == "status":
            return (
                f"{self.thing_name}: {summary(self.metrics())}; telemetry every {self.interval:g} s"
            )
        if name == "help":
            return (
                f"{self.thing_name} (iotchat edge {COMPONENT_VERSION}) answers: "
                f"/status or @{self.thing_name} /status: uptime, load, memory, CPU temperature; "
                "/help: this text"
            )
        if addressed:  # a bare unknown command may be for another bot in the room
            return f"{self.thing_name}: unknown command /{name}; try /help"
        return None
