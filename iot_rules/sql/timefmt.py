"""Java date patterns for ``parse_time`` (Joda-Time formatting) and ``time_to_epoch`` (JDK parsing).

Only the common pattern letters are supported (see docs/iot-sql.md); an unsupported letter or
unparseable input makes the SQL function return Undefined, as an invalid argument does on AWS.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .types import UNDEFINED

_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_SHORT_ZONES = {
    "UTC": 0,
    "GMT": 0,
    "Z": 0,
    "UT": 0,
    "EST": -5,
    "EDT": -4,
    "CST": -6,
    "CDT": -5,
    "MST": -7,
    "MDT": -6,
    "PST": -8,
    "PDT": -7,
}
_OFFSET = re.compile(r"^(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?$")


@lru_cache(maxsize=256)
def zone(name: str) -> tzinfo | None:
    """A Joda/JDK zone id ("America/Belize", "UTC", "UTC+01:00", "+0100", "PST")."""
    if name in _SHORT_ZONES:
        return timezone(timedelta(hours=_SHORT_ZONES[name]))
    m = _OFFSET.match(name)
    if m:
        sign = -1 if m.group(1) == "-" else 1
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3) or 0))
        return timezone(sign * delta)
    if name.startswith("Etc/") or "/" in name or name.isalpha():
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    return None


def _tokens(pattern: str) -> list[tuple[str, Any]] | None:
    """Split a pattern into ("lit", text) and ("field", (letter, count)) tokens."""
    out: list[tuple[str, Any]] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            if i + 1 < n and pattern[i + 1] == "'":
                out.append(("lit", "'"))
                i += 2
                continue
            j = pattern.find("'", i + 1)
            if j < 0:
                return None
            text = pattern[i + 1 : j]
            out.append(("lit", text))
            i = j + 1
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and pattern[j] == c:
                j += 1
            out.append(("field", (c, j - i)))
            i = j
        else:
            out.append(("lit", c))
            i += 1
    return out


def _offset_text(dt: datetime, colon: bool) -> str:
    off = dt.utcoffset() or timedelta(0)
    total = int(off.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    h, m = divmod(abs(total), 60)
    return f"{sign}{h:02d}:{m:02d}" if colon else f"{sign}{h:02d}{m:02d}"


def _format_field(dt: datetime, letter: str, count: int, zone_name: str) -> str | None:
    if letter == "G":
        return "AD" if dt.year > 0 else "BC"
    if letter in "yYu":
        return f"{dt.year % 100:02d}" if count == 2 else str(dt.year).zfill(count)
    if letter == "M":
        if count >= 4:
            return _MONTHS[dt.month - 1]
        if count == 3:
            return _MONTHS[dt.month - 1][:3]
        return str(dt.month).zfill(count)
    if letter == "E":
        name = _DAYS[dt.weekday()]
        return name if count >= 4 else name[:3]
    if letter == "e":
        return str(dt.isoweekday()).zfill(count)
    simple = {
        "d": dt.day,
        "D": dt.timetuple().tm_yday,
        "H": dt.hour,
        "k": dt.hour or 24,
        "K": dt.hour % 12,
        "h": dt.hour % 12 or 12,
        "m": dt.minute,
        "s": dt.second,
    }
    if letter in simple:
        return str(simple[letter]).zfill(count)
    if letter == "S":
        return f"{dt.microsecond:06d}{'0' * max(0, count - 6)}"[:count]
    if letter == "a":
        return "AM" if dt.hour < 12 else "PM"
    if letter == "z":
        return (dt.tzname() or zone_name) if count < 4 else zone_name
    if letter == "Z":
        if count >= 3:
            return zone_name
        return _offset_text(dt, colon=count == 2)
    return None


def format_time(pattern: str, epoch_ms: int, zone_name: str) -> Any:
    """``parse_time(pattern, ms, zone)``: format epoch milliseconds in a Joda pattern."""
    tz = zone(zone_name)
    tokens = _tokens(pattern)
    if tz is None or tokens is None:
        return UNDEFINED
    try:
        dt = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone(tz)
        dt = dt.replace(microsecond=(epoch_ms % 1000) * 1000)
    except (OverflowError, OSError, ValueError):
        return UNDEFINED
    parts = []
    for kind, value in tokens:
        if kind == "lit":
            parts.append(value)
            continue
        text = _format_field(dt, value[0], value[1], zone_name)
        if text is None:
            return UNDEFINED
        parts.append(text)
    return "".join(parts)


_ZONE_TEXT = r"[A-Za-z][A-Za-z0-9_/+\-:]*|[+-]\d{2}:?\d{2}|Z"


def _field_regex(letter: str, count: int) -> str | None:
    if letter in "yu":
        return r"(\d{2})" if count == 2 else r"([+-]?\d{4,9})"
    if letter in "ML":
        if count >= 3:
            return r"([A-Za-z]+)"
        return r"(\d{1,2})"
    if letter in "dHhmsKk":
        return r"(\d{1,2})"
    if letter == "D":
        return r"(\d{1,3})"
    if letter == "S":
        return rf"(\d{{{count}}})"
    if letter == "a":
        return r"([AaPp][Mm])"
    if letter == "E":
        return r"([A-Za-z]+)"
    if letter == "G":
        return r"([A-Za-z]+)"
    if letter in "VzO":
        return rf"({_ZONE_TEXT})"
    if letter in "XxZ":
        return r"(Z|[+-]\d{2}(?::?\d{2})?)"
    return None


@lru_cache(maxsize=128)
def _parser(pattern: str) -> tuple[re.Pattern[str], list[tuple[str, int]]] | None:
    tokens = _tokens(pattern)
    if tokens is None:
        return None
    rx: list[str] = []
    fields: list[tuple[str, int]] = []
    for kind, value in tokens:
        if kind == "lit":
            rx.append(re.escape(value))
            continue
        part = _field_regex(*value)
        if part is None:
            return None
        rx.append(part)
        fields.append(value)
    return re.compile("^" + "".join(rx) + "$"), fields


def _month(text: str) -> int | None:
    low = text.lower()
    for i, name in enumerate(_MONTHS):
        if low == name.lower() or low == name[:3].lower():
            return i + 1
    return None


def parse_time_to_epoch(text: str, pattern: str) -> Any:
    """``time_to_epoch(text, pattern)``: milliseconds since the epoch; UTC unless zoned."""
    compiled = _parser(pattern)
    if compiled is None:
        return UNDEFINED
    rx, fields = compiled
    m = rx.match(text)
    if not m:
        return UNDEFINED
    year, month, day, hour, minute, second, micro = 1970, 1, 1, 0, 0, 0, 0
    pm: bool | None = None
    tz: tzinfo | None = UTC
    for (letter, count), raw in zip(fields, m.groups(), strict=True):
        if letter in "yu":
            year = 2000 + int(raw) if count == 2 else int(raw)
        elif letter in "ML":
            month_value = int(raw) if raw.isdigit() else _month(raw)
            if month_value is None:
                return UNDEFINED
            month = month_value
        elif letter == "d":
            day = int(raw)
        elif letter in "Hk":
            hour = int(raw) % 24
        elif letter in "hK":
            hour = int(raw) % 12
        elif letter == "m":
            minute = int(raw)
        elif letter == "s":
            second = int(raw)
        elif letter == "S":
            micro = int((raw + "000000")[:6])
        elif letter == "a":
            pm = raw.lower() == "pm"
        elif letter in "VzOXxZ":
            tz = zone(raw)
            if tz is None:
                return UNDEFINED
    if pm is not None:
        hour = hour % 12 + (12 if pm else 0)
    try:
        dt = datetime(year, month, day, hour, minute, second, micro, tzinfo=tz)
    except ValueError:
        return UNDEFINED
    delta = dt - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
