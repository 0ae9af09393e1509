"""The string functions, and the regular expressions and replacement strings they take in
Java's syntax (AWS runs IoT SQL on the JVM).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from ..types import (
    UNDEFINED,
    floor_int,
    to_str,
)
from .base import Env, str_args


def f_chr(env: Env, a: Any) -> Any:
    code = floor_int(a)
    if code is UNDEFINED or not 0 <= code <= 127:
        return UNDEFINED
    return chr(code)


def f_concat(env: Env, *args: Any) -> Any:
    if not args:
        return UNDEFINED
    if len(args) == 1:
        # one argument: an Array comes back as is, anything else as its String form
        return args[0] if type(args[0]) is list else to_str(args[0])
    if any(type(a) is list for a in args):
        out: list[Any] = []
        for a in args:
            if type(a) is list:
                out.extend(a)
            elif a is not UNDEFINED:
                out.append(a)
        return out
    parts = str_args(*args)
    return UNDEFINED if parts is UNDEFINED else "".join(parts)


def str2(test: Callable[[str, str], Any]) -> Callable[..., Any]:
    def impl(env: Env, a: Any, b: Any) -> Any:
        parts = str_args(a, b)
        return UNDEFINED if parts is UNDEFINED else test(parts[0], parts[1])

    return impl


def str1(op: Callable[[str], Any]) -> Callable[..., Any]:
    def impl(env: Env, a: Any) -> Any:
        s = to_str(a)
        return UNDEFINED if s is UNDEFINED else op(s)

    return impl


def java_length(s: str) -> int:
    """String length in UTF-16 code units, as Java's ``String.length()`` (and so the rules
    engine) counts: a pair from a JSON escape such as ``"\\ud83d\\ude00"`` is one code point
    here and two units there; a lone surrogate (``"\\ud800"``, which JSON allows) is one unit
    in both and must not raise (``surrogatepass``)."""
    if s.isascii():
        return len(s)
    return len(s.encode("utf-16-le", "surrogatepass")) // 2


def java_utf8(s: str) -> bytes:
    """The UTF-8 bytes Java's ``String.getBytes(UTF_8)`` gives: a lone surrogate cannot be
    encoded and becomes ``?``, as Java's encoder replaces it, instead of raising."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        return s.encode("utf-8", "replace")


def pad(left: bool) -> Callable[..., Any]:
    def impl(env: Env, a: Any, n: Any) -> Any:
        s = to_str(a)
        k = floor_int(n)
        if s is UNDEFINED or k is UNDEFINED:
            return UNDEFINED
        k = min(max(k, 0), 1000)
        return " " * k + s if left else s + " " * k

    return impl


WHITESPACE = " \t\n\r\f\v"


@lru_cache(maxsize=512)
def compile_regex(pattern: str) -> re.Pattern[str] | None:
    """Java regexes are close enough to Python's for the patterns rules use; cache them."""
    try:
        return re.compile(pattern)
    except (re.error, RecursionError, OverflowError):
        return None


_JAVA_GROUP_REF = re.compile(r"\\(.)|\$(\d+|\{[A-Za-z][A-Za-z0-9]*\})")


def java_replacement(repl: str) -> Callable[[re.Match[str]], str]:
    """``$1``/``${name}`` group references and ``\\$`` escapes, as Java's Matcher does."""
    pieces: list[Any] = []
    pos = 0
    for m in _JAVA_GROUP_REF.finditer(repl):
        pieces.append(repl[pos : m.start()])
        if m.group(1) is not None:
            pieces.append(m.group(1))
        else:
            ref = m.group(2)
            pieces.append(int(ref) if ref.isdigit() else ref[1:-1])
        pos = m.end()
    pieces.append(repl[pos:])

    def expand(match: re.Match[str]) -> str:
        out = []
        for p in pieces:
            if isinstance(p, str):
                out.append(p)
            else:
                out.append(match.group(p) or "")
        return "".join(out)

    return expand


def _regex_call(
    op: Callable[[re.Pattern[str], str, list[str]], Any],
) -> Callable[..., Any]:
    """A ``regexp_*`` function: string arguments (text, pattern, rest...), a pattern that
    compiles, then ``op(pattern, text, rest)``; Undefined when any of that fails."""

    def impl(env: Env, a: Any, p: Any, *rest: Any) -> Any:
        parts = str_args(a, p, *rest)
        if parts is UNDEFINED:
            return UNDEFINED
        rx = compile_regex(parts[1])
        return UNDEFINED if rx is None else op(rx, parts[0], parts[2:])

    return impl


def _replace(rx: re.Pattern[str], text: str, rest: list[str]) -> Any:
    try:
        return rx.sub(java_replacement(rest[0]), text)
    except (IndexError, re.error):
        return UNDEFINED


def _substr(rx: re.Pattern[str], text: str, rest: list[str]) -> Any:
    m = rx.search(text)
    return m.group(0) if m else ""


f_regexp_matches = _regex_call(lambda rx, text, rest: rx.search(text) is not None)
f_regexp_replace = _regex_call(_replace)
f_regexp_substr = _regex_call(_substr)


def f_replace(env: Env, a: Any, b: Any, c: Any) -> Any:
    parts = str_args(a, b, c)
    return UNDEFINED if parts is UNDEFINED else parts[0].replace(parts[1], parts[2])


def f_substring(env: Env, a: Any, start: Any, end: Any = None) -> Any:
    s = to_str(a)
    i = floor_int(start)
    if s is UNDEFINED or i is UNDEFINED:
        return UNDEFINED
    n = len(s)
    i = min(max(i, 0), n)
    if end is None:
        return s[i:]
    j = floor_int(end)
    if j is UNDEFINED:
        return UNDEFINED
    j = min(max(j, 0), n)
    return s[i:j] if i < j else ""


def f_indexof(env: Env, a: Any, b: Any) -> Any:
    parts = str_args(a, b)
    return UNDEFINED if parts is UNDEFINED else parts[0].find(parts[1])
