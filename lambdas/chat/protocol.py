"""The wire format's rules (docs/protocol.md): limits, validation and the messages we send.

The topic rules check the same limits in their WHERE clauses (``iot_rules/rules/``); a test keeps
the two in step. Validation returns a :class:`ProtocolError` carrying the error code the sender
sees, never raises on hostile input.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

VERSION = 1

ROOM = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MESSAGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
CLIENT_ID = re.compile(r"^[A-Za-z0-9:_-]{1,128}$")
GROUP_ID = re.compile(r"^g-[0-9a-f]{32}$")

MAX_TEXT = 2000
MAX_NAME = 64
MAX_GROUP_MEMBERS = 100
MAX_ROOMS_PER_CLIENT = 50
DEFAULT_PAGE = 50
MAX_PAGE = 100
# A history page stays under this many bytes of JSON, so it fits AWS IoT's 128 KiB payload.
MAX_PAGE_BYTES = 96 * 1024
MAX_TELEMETRY_BYTES = 2048
RETENTION_DAYS = 365

# What IoT SQL's trim() strips; "only whitespace" means the same to the rules and to us.
BLANK = " \t\n\r\f\v"
# A UTF-16 surrogate left alone: JSON lets a client write one ("\ud800"), but it is no character,
# cannot be encoded in UTF-8 and no client can show it, so text and names holding one are
# refused (the rules use the same test: regexp_matches(body, '^[^\uD800-\uDFFF]*+[\uD800-\uDFFF]')).
# A valid pair ("\ud83d\ude00") is one code point once decoded, so it never matches here.
LONE_SURROGATE = re.compile("[\ud800-\udfff]")

COMMAND_TYPES = (
    "join",
    "leave",
    "history",
    "who",
    "create",
    "invite",
    # People, groups by consent, edits (lambdas/chat/people.py, groups.py, edits.py).
    "hello",
    "name",
    "whois",
    "edit",
    "delete",
    "accept",
    "decline",
    "remove",
    "rename",
)
STREAM_TYPES = ("typing", "telemetry")


@dataclass(frozen=True)
class ProtocolError(Exception):
    """A rejected input: ``code`` and ``message`` go to the sender, ``ref`` names what failed."""

    code: str
    message: str
    ref: str | None = None

    def envelope(self) -> dict[str, Any]:
        return error(self.code, self.message, self.ref)


def error(code: str, message: str, ref: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"v": VERSION, "type": "error", "code": code, "message": message}
    if ref is not None:
        body["ref"] = ref
    return body


def java_length(text: str) -> int:
    """Length in UTF-16 code units, as IoT SQL's ``length()`` (Java) counts it; a lone
    surrogate is one unit there too, and must not raise here (``surrogatepass``)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def is_unicode_text(text: str) -> bool:
    """Whether ``text`` is all characters, without a lone surrogate."""
    return LONE_SURROGATE.search(text) is None


def inbox(client_id: str) -> str:
    return f"chat/in/{client_id}"


def room_topic(room: str) -> str:
    return f"chat/pub/{room}"


def room_events_topic(room: str) -> str:
    """Where the backend sends presence and activity for a room: only the rule
    ``chat_room_events`` republishes from here to ``chat/pub/<room>``, so room topics keep a
    single publisher (the rules) and only the types the rule admits reach them."""
    return f"chat/events/{room}"


def dumps(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: what goes on the wire and what page sizes are measured in. A lone
    surrogate (which validation refuses, but a telemetry value may hold) stays a JSON escape
    instead of failing the whole invocation."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(body, separators=(",", ":")).encode("ascii")


# ---------------------------------------------------------------------------------- checks


def ref_of(request: dict[str, Any]) -> str | None:
    """The request's ``id`` when it is one we can quote back safely."""
    value = request.get("id")
    return value if isinstance(value, str) and MESSAGE_ID.match(value) else None


def require_room(request: dict[str, Any]) -> str:
    room = request.get("room")
    if not isinstance(room, str) or not ROOM.match(room):
        raise ProtocolError(
            "INVALID_ROOM", "room must be 1-64 characters of A-Z a-z 0-9 _ -", ref_of(request)
        )
    return room


def require_id(request: dict[str, Any]) -> str:
    value = request.get("id")
    if not isinstance(value, str) or not MESSAGE_ID.match(value):
        raise ProtocolError("INVALID_ID", "id must be 1-64 characters of A-Z a-z 0-9 _ -")
    return value


def require_text(request: dict[str, Any]) -> str:
    text = request.get("body")
    if not isinstance(text, str) or not text.strip(BLANK) or not is_unicode_text(text):
        raise ProtocolError(
            "INVALID_TEXT",
            "body must be a non-empty string of Unicode characters (no lone surrogates)",
            ref_of(request),
        )
    if java_length(text) > MAX_TEXT:
        raise ProtocolError(
            "TEXT_TOO_LONG", f"body is limited to {MAX_TEXT} characters", ref_of(request)
        )
    return text


def optional_name(request: dict[str, Any], field: str = "name") -> str | None:
    if field not in request:
        return None
    name = request[field]  # null is not "no name": the rules refuse it too
    if (
        not isinstance(name, str)
        or not name.strip(BLANK)
        or java_length(name) > MAX_NAME
        or not is_unicode_text(name)
    ):
        raise ProtocolError(
            "INVALID_NAME",
            f"{field} must be 1-{MAX_NAME} characters of Unicode (no lone surrogates)",
            ref_of(request),
        )
    return name


def require_client_id(request: dict[str, Any], field: str) -> str:
    value = request.get(field)
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise ProtocolError(
            "INVALID_REQUEST", f"{field} must be a client id (A-Z a-z 0-9 : _ -)", ref_of(request)
        )
    return value


def require_group(request: dict[str, Any]) -> str:
    value = request.get("groupId")
    if not isinstance(value, str) or not GROUP_ID.match(value):
        raise ProtocolError("INVALID_REQUEST", "groupId must be a group id", ref_of(request))
    return value


def page_limit(request: dict[str, Any]) -> int:
    limit = request.get("limit", DEFAULT_PAGE)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
        raise ProtocolError(
            "INVALID_REQUEST", f"limit must be an integer from 1 to {MAX_PAGE}", ref_of(request)
        )
    return limit
