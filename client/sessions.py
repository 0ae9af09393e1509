"""One person, many sessions: the MQTT client id of each session (docs/protocol.md, "People and
sessions").

A session's client id is the person's Cognito identity id, ``_`` and a per-session part chosen
at random, so ``iotchat chat``, ``listen`` and ``send`` (or two tabs) never take each other over:
AWS IoT Core disconnects the older of two connections that use one client id
(https://docs.aws.amazon.com/iot/latest/developerguide/life-cycle-events.html, DUPLICATE_CLIENTID).
The IoT policy allows exactly ``client/${cognito-identity.amazonaws.com:sub}`` and
``..._*`` (docs/policies.md).
"""

from __future__ import annotations

import re
import secrets

# <region>:<GUID>, as Cognito makes identity ids; nothing else has this shape.
IDENTITY_ID = re.compile(
    r"[a-z]{2}(?:-[a-z]+)+-\d:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
SESSION_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
RANDOM_HEX = 12  # 48 random bits: two sessions of one person never collide in practice


def session_client_id(person: str, kind: str) -> str:
    """A fresh client id for one session of ``person``: ``<identity id>_<kind>-<random>``.

    ``kind`` names what runs (``cli-chat``, ``cli-listen``, ``cli-send``, ``py``) so a person
    reading the gateway's log can tell their sessions apart."""
    part = f"{kind}-{secrets.token_hex(RANDOM_HEX // 2)}"
    if not SESSION_PART.fullmatch(part):
        raise ValueError(f"a session kind is letters, digits, _ or -: {kind!r}")
    return f"{person}_{part}"


def person_of(client_id: str) -> str:
    """The person behind a client id: the identity id of a session id, else the id itself."""
    head, sep, _ = client_id.partition("_")
    return head if sep and IDENTITY_ID.fullmatch(head) else client_id
