"""What every SQL function shares: :class:`Env` (one evaluation's state), :class:`Fn` (a
registry entry), and the argument coercions that turn unusable arguments into Undefined.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..types import (
    UNDEFINED,
    V1,
    decimal_to_int,
    float_to_decimal,
    to_decimal,
    to_number,
    to_str,
)


class Env:
    """Per-evaluation state: the value names resolve against, the message, services, vars."""

    __slots__ = ("ctx", "msg", "root", "ts", "v2", "vars")

    def __init__(self, root: Any, msg: Any, ctx: Any, v2: bool) -> None:
        self.root = root
        self.msg = msg
        self.ctx = ctx
        self.vars: dict[str, Any] = {}
        self.ts: int | None = None
        self.v2 = v2

    def nested(self, root: Any) -> Env:
        """An Env for a nested SELECT: same message, variables and timestamp()."""
        if self.ts is None:
            self.ts = self.msg.timestamp_ms or int(time.time() * 1000)
        env = Env(root, self.msg, self.ctx, self.v2)
        env.vars = self.vars
        env.ts = self.ts
        return env


@dataclass(frozen=True)
class Fn:
    impl: Callable[..., Any]
    min_args: int
    max_args: int | None
    since: str = V1
    service: bool = False  # needs an AWS service; Undefined locally unless the context has it


def str_args(*args: Any) -> Any:
    out = []
    for a in args:
        s = to_str(a)
        if s is UNDEFINED:
            return UNDEFINED
        out.append(s)
    return out


def double(fn: Callable[..., float], *args: Any) -> Any:
    vals = []
    for a in args:
        d = to_decimal(a)
        if d is UNDEFINED:
            return UNDEFINED
        vals.append(float(d))
    try:
        return float_to_decimal(fn(*vals))
    except (ValueError, OverflowError, ZeroDivisionError):
        return UNDEFINED


def math1(fn: Callable[[float], float]) -> Callable[..., Any]:
    return lambda env, a: double(fn, a)


def round_to_int(a: Any, rounding: str) -> Any:
    n = to_number(a)
    if n is UNDEFINED:
        return UNDEFINED
    if type(n) is int:
        return n
    return decimal_to_int(n, rounding)
