"""Presence from AWS IoT lifecycle events: online and offline per room.

Lifecycle events can arrive twice and out of order (a takeover's old ``disconnected`` may come
after the new ``connected``). The connection item only moves forward (versionNumber, then
timestamp; see ChatStore.record_connection), so a stale event changes nothing and announces
nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from .commands import presence
from .protocol import CLIENT_ID, MAX_ROOMS_PER_CLIENT, room_events_topic
from .publisher import Publisher
from .store import ChatStore

log = logging.getLogger("iotchat.presence")

EVENT_TYPES = {"connected": True, "disconnected": False}
TAKEOVER = "DUPLICATE_CLIENTID"


def handle_lifecycle(store: ChatStore, publisher: Publisher, event: dict[str, Any]) -> int:
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
    applied = store.record_connection(
        client_id,
        connected=connected,
        version=version,
        ts=ts,
        session_id=str(event.get("sessionIdentifier", "")),
    )
    if not applied:
        log.info("stale or repeated %s for %s (version %s)", event["eventType"], client_id, version)
        return 0
    if not connected and event.get("disconnectReason") == TAKEOVER:
        # The same client id connected again: its new connection's event says online, and
        # the rooms should never see it flicker offline in between.
        return 0
    # Every room's state first, then the announcements: a failed publish (retried by Lambda,
    # when this event will read as already applied) must not leave a room's flag unchanged.
    updates = []
    for room in store.rooms_of(client_id, limit=MAX_ROOMS_PER_CLIENT + 1):
        member = store.set_online(room, client_id, connected)
        if member is None:
            continue  # left in the meantime
        status = "online" if connected else "offline"
        reason = None if connected else "disconnected"
        updates.append(
            presence(room, client_id, status, ts, name=member.get("name"), reason=reason)
        )
    for body in updates:
        publisher.publish(room_events_topic(body["room"]), body)
    return len(updates)
