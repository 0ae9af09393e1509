"""What a display name or a handle may be (docs/protocol.md, "Names and handles").

People read names, so a name must show what it is: it is normalised to NFC (the same letters
typed two ways are one name), and refused when nothing visible is left, when it holds control
characters, or when it holds bidirectional overrides and isolates, which can make a name read
as someone else's or turn the text around it (Unicode TR 36, "Bidirectional Text Spoofing").
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

from .protocol import MAX_NAME, ProtocolError, is_unicode_text, java_length

# Bidirectional embeddings and overrides (U+202A-U+202E) and isolates (U+2066-U+2069).
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
# Categories that show nothing by themselves: spaces and separators, format characters (zero
# widths, joiners, the BOM), controls; marks only ever decorate a character before them.
_INVISIBLE_CATEGORIES = frozenset({"Zs", "Zl", "Zp", "Cf", "Cc", "Mn", "Me"})
# Hangul fillers and braille blank are letters or symbols by category, yet print nothing.
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")

# A signed-in person's handle (the Cognito attribute custom:handle); guest-... is generated.
HANDLE = re.compile(r"^[a-z0-9_-]{3,32}$")
GUEST_PREFIX = "guest-"
LEGACY_PREFIX = "user-"
HANDLE_ATTRIBUTE = "custom:handle"


def _visible(char: str) -> bool:
    return unicodedata.category(char) not in _INVISIBLE_CATEGORIES and char not in _BLANK_LETTERS


def clean_name(value: object, ref: str | None = None, field: str = "name") -> str:
    """The display name as stored and shown (NFC, trimmed), or INVALID_NAME saying why."""

    def refuse(why: str) -> ProtocolError:
        return ProtocolError("INVALID_NAME", f"{field} {why}", ref)

    if not isinstance(value, str) or not is_unicode_text(value):
        raise refuse("must be a string of Unicode characters (no lone surrogates)")
    name = unicodedata.normalize("NFC", value).strip()
    if any(c in BIDI_CONTROLS for c in name):
        raise refuse("must not contain bidirectional override or isolate characters")
    if any(unicodedata.category(c) == "Cc" for c in name):
        raise refuse("must not contain control characters")
    if not any(_visible(c) for c in name):
        raise refuse("must contain a visible character")
    if java_length(name) > MAX_NAME:
        raise refuse(f"is limited to {MAX_NAME} characters")
    return name


def check_handle(value: object, ref: str | None = None) -> str:
    """A signed-in person's chosen handle, or INVALID_NAME."""
    if not isinstance(value, str) or not HANDLE.match(value) or value.startswith(GUEST_PREFIX):
        raise ProtocolError(
            "INVALID_NAME",
            "a handle is 3-32 characters of a-z 0-9 _ - and does not start with guest-",
            ref,
        )
    return value


def generated_handle(prefix: str, seed: str, attempt: int = 0) -> str:
    """``guest-`` (or ``user-``) and hex digits derived from ``seed``: the same person gets the
    same handle on every retry; ``attempt`` lengthens it when the shorter one is taken."""
    digest = hashlib.sha256(seed.encode()).hexdigest()
    return prefix + digest[: 8 + 2 * attempt]
