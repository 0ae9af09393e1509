"""Presence from AWS IoT lifecycle events: a person online or offline, per room.

Events come per session (client id); a person is online while any session is connected
(``online.OnlineState``, which also drops duplicated and out-of-order events). Only a change of
the person's state is announced, as one update per room the person is in, sent as one batch.
A takeover (the same client id connecting again: its old connection's ``disconnected`` says
``DUPLICATE_CLIENTID``) is no change at all, since the new connection carries on the session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .commands import presence
from .online import OnlineState
from .people import Directory
from .protocol import CLIENT_ID, MAX_ROOMS_PER_CLIENT, room_events_topic
from .publisher import Publisher
from .sessions import person_of
from .store import ChatStore

log = logging.getLogger("iotchat.presence")

EVENT_TYPES = {"connected": True, "disconnected": False}
TAKEOVER = "DUPLICATE_CLIENTID"
FAN_OUT_THREADS = 8  # publishes in flight at once for one person's rooms (at most 50 rooms)

Describe = Callable[[str], dict[str, Any]]  # person -> extra presence fields (name, handle)


def handle_lifecycle(
    store: ChatStore,
    publisher: Publisher,
    event: dict[str, Any],
    describe: Describe | None = None,
) -> int:
    """Apply one lifecycle event; returns how many room updates were published."""
    connected = EVENT_TYPES.get(event.get("eventType", ""))
    client_id = event.get("clientId")
    version = event.get("versionNumber")
    ts = event.get("timestamp")
    if (
        connected is None
        or not isinstance(client_id, str)
        or not CLIENT_ID.match(client_id)
        or not isinstance(version, int)
        or not isinstance(ts, int)
    ):
        log.info("ignoring event %r", {k: event.get(k) for k in ("eventType", "clientId")})
        return 0
    if not connected and event.get("disconnectReason") == TAKEOVER:
        # The newer connection of this client id has (or will have) its own connected event,
        # so the session never stopped; recording this one could only flicker the person.
        return 0
    person = person_of(client_id)
    change = OnlineState(store.db, store.state_table).record(
        person, client_id, connected=connected, version=version, ts=ts
    )
    if change is None:
        log.info("stale or repeated %s for %s (version %s)", event["eventType"], client_id, version)
        return 0
    if change.was_online == change.is_online:
        return 0  # another session of the person was already (or is still) connected
    status = "online" if change.is_online else "offline"
    extra = (describe or _profile_fields(store))(person)
    updates = [
        presence(
            room,
            person,
            status,
            ts,
            reason=None if change.is_online else "disconnected",
            **extra,
        )
        for room in store.rooms_of(person, limit=MAX_ROOMS_PER_CLIENT + 1)
    ]
    publish_all(publisher, [(room_events_topic(body["room"]), body) for body in updates])
    return len(updates)


def _profile_fields(store: ChatStore) -> Describe:
    """Who the person is as others see them (their stored profile, lambdas/chat/people.py)."""
    directory = Directory(store)

    def describe(person: str) -> dict[str, Any]:
        profile = directory.profile(person)
        return {k: profile[k] for k in ("handle", "name", "guest")}

    return describe


def publish_all(publisher: Publisher, messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send a batch at once rather than one round trip after another; any failure fails the
    invocation (after the others were tried), which Lambda then retries."""
    if len(messages) <= 1:
        for topic, body in messages:
            publisher.publish(topic, body)
        return
    with ThreadPoolExecutor(max_workers=min(FAN_OUT_THREADS, len(messages))) as pool:
        futures = [pool.submit(publisher.publish, topic, body) for topic, body in messages]
    for future in futures:
        future.result()
