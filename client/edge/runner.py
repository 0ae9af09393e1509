"""Wiring: pick the transport, connect, run the agent until Ctrl-C or SIGTERM.

Greengrass mode when the nucleus's IPC socket is in the environment, direct mode (mutual TLS
with a device directory) otherwise. Both stop cleanly on SIGINT and SIGTERM (what systemd and
the nucleus send), leaving the room through the broker's presence, not an error.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..chat_client import ROOM_RULE, ChatClient, valid_room
from ..transport import TransportFactory
from .agent import EdgeAgent
from .device import DeviceConfigError, greengrass_device, load_device
from .ipc import THING_NAME_ENV, IpcTransport, under_greengrass
from .mtls import MtlsTransport

log = logging.getLogger("iotchat.edge")

DEFAULT_ROOM = "lobby"
DEFAULT_INTERVAL = 60.0
CONNECT_POLL = 0.1


class EdgeError(RuntimeError):
    """The component cannot start; the message is for the person running it."""


@dataclass(frozen=True)
class EdgeSettings:
    room: str = DEFAULT_ROOM
    interval: float = DEFAULT_INTERVAL
    device_dir: Path | None = None  # direct mode
    stack_file: Path | None = None  # direct mode: overrides device.json's endpoint
    thing_name: str | None = None  # Greengrass mode: default $AWS_IOT_THING_NAME

    def check(self) -> None:
        if not valid_room(self.room):
            raise EdgeError(f"room {self.room!r} is not {ROOM_RULE}")
        if not self.interval > 0:
            raise EdgeError("the telemetry interval must be a positive number of seconds")


def open_chat(settings: EdgeSettings) -> ChatClient:
    """A chat client on the right transport, not yet started (``--device-dir`` forces direct)."""
    if settings.device_dir is None and under_greengrass():
        thing = settings.thing_name or os.environ.get(THING_NAME_ENV)
        if not thing:
            raise EdgeError(f"under Greengrass but no thing name (${THING_NAME_ENV} is unset)")
        stack, identity = greengrass_device(thing)
        factory: TransportFactory = IpcTransport
    else:
        if settings.device_dir is None:
            raise EdgeError(
                "direct mode needs --device-dir (the files `iotchat device create` wrote)"
            )
        try:
            stack, identity = load_device(settings.device_dir, settings.stack_file)
        except DeviceConfigError as exc:
            raise EdgeError(str(exc)) from None
        factory = MtlsTransport
    return ChatClient(stack, identity, transport_factory=factory)


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        log.info("stopping (%s)", signal.Signals(signum).name)
        stop.set()

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _connect(chat: ChatClient, stop: threading.Event) -> bool:
    """Wait for the first connection, however long it takes, unless stopped first.

    A device often starts before its network (a Pi at boot), and the transport keeps retrying
    with backoff and logs each failure, so there is no deadline here; Ctrl-C ends the wait.
    """
    try:
        chat.transport.start()
    except ConnectionError as exc:
        raise EdgeError(str(exc)) from None
    while not chat.connected:
        if stop.wait(CONNECT_POLL):
            return False
    return True


def run(settings: EdgeSettings, stop: threading.Event | None = None) -> None:
    """Connect and run until ``stop`` is set or a signal arrives."""
    settings.check()
    stop = stop or threading.Event()
    chat = open_chat(settings)
    with _stop_on_signals(stop):
        try:
            if _connect(chat, stop):
                log.info("connected as %s", chat.client_id)
                EdgeAgent(chat, chat.client_id, settings.room, settings.interval).run(stop)
        finally:
            chat.stop()
    log.info("stopped")
