"""Item keys of the messages table (docs/data-model.md) and the opaque history cursor."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass

from .protocol import ProtocolError

# A room message's item may end with its text's digest (``copy_mid``).
_MID_PART = r"[A-Za-z0-9:_-]{1,128}\|[A-Za-z0-9_-]{1,64}(?:#[0-9a-f]{64})?"
_TSID = re.compile(r"^\d{13}#" + _MID_PART + "$")
_MID = re.compile("^" + _MID_PART + "$")
# Between a message's ``mid`` and this suffix lie exactly its copies: ids never hold "#" or
# "$", and "#" < "$" sorts below every character an id may hold (docs/data-model.md).
_COPIES_END = "$"


def room_conv(room: str) -> str:
    return f"room#{room}"


def direct_conv(a: str, b: str) -> str:
    """Both parties name the same conversation: the pair, sorted."""
    low, high = sorted((a, b))
    return f"dm#{low}|{high}"


def group_conv(group: str) -> str:
    return f"group#{group}"


def mid(sender: str, message_id: str) -> str:
    """The item key within a conversation: a redelivery has the same one, a stranger cannot."""
    return f"{sender}|{message_id}"


def copy_mid(item_mid: str, text: str) -> str:
    """The key the store rule gives a room message: ``<sender>|<id>#<sha256 of the text>``,
    so an identical resend lands on its own item and a different text lands beside it."""
    return f"{item_mid}#{hashlib.sha256(text.encode()).hexdigest()}"


def copies_range(item_mid: str) -> tuple[str, str]:
    """Bounds (inclusive) of a sort-key range holding ``item_mid`` and all its copies."""
    return item_mid, item_mid + _COPIES_END


def tsid(ts: int, item_mid: str) -> str:
    """Time-order key: fixed-width milliseconds, then the unique ``mid``."""
    return f"{ts:013d}#{item_mid}"


@dataclass(frozen=True)
class Cursor:
    """Where the previous page stopped: the ``byTime`` key of its last (oldest) message."""

    tsid: str
    mid: str

    def encode(self) -> str:
        raw = json.dumps({"t": self.tsid, "m": self.mid}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    @classmethod
    def decode(cls, text: object, ref: str | None = None) -> Cursor:
        bad = ProtocolError("INVALID_REQUEST", "cursor is not one this server gave out", ref)
        if not isinstance(text, str) or len(text) > 512:
            raise bad
        try:
            data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise bad from None
        if not isinstance(data, dict):
            raise bad
        t, m = data.get("t"), data.get("m")
        if not isinstance(t, str) or not isinstance(m, str):
            raise bad
        if not _TSID.match(t) or not _MID.match(m) or not t.endswith("#" + m):
            raise bad
        return cls(t, m)
