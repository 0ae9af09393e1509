"""IAM-style wildcards: ``*`` is any run of characters, ``?`` one character, across ``/``.

Nothing else is special: MQTT's ``+`` and ``#`` are literal in policies. Patterns come in
segments so that text substituted from a policy variable stays literal even when a client
chose a value containing ``*`` or ``?``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

# A segment is (literal, text): literal text is matched as is, otherwise ``*``/``?`` are wild.
Segment = tuple[bool, str]


def _glob_regex(text: str) -> str:
    return "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in text)


@lru_cache(maxsize=16384)
def compile_segments(segments: tuple[Segment, ...], ignore_case: bool = False) -> re.Pattern[str]:
    """A compiled full-match regex for a pattern made of segments (cached: patterns repeat)."""
    body = "".join(re.escape(text) if literal else _glob_regex(text) for literal, text in segments)
    return re.compile(body, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def compile_glob(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    return compile_segments(((False, pattern),), ignore_case)


def glob_match(pattern: str, value: str, ignore_case: bool = False) -> bool:
    return compile_glob(pattern, ignore_case).fullmatch(value) is not None


def segments_match(segments: Sequence[Segment], value: str, ignore_case: bool = False) -> bool:
    return compile_segments(tuple(segments), ignore_case).fullmatch(value) is not None
