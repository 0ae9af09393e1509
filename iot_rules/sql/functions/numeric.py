"""The math functions (``abs`` ... ``trunc``, ``rand``), over SQL numbers: ints and Decimals."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from ..types import (
    UNDEFINED,
    float_to_decimal,
    floor_int,
    to_number,
)
from .base import Env, double, round_to_int


def f_abs(env: Env, a: Any) -> Any:
    n = to_number(a)
    return UNDEFINED if n is UNDEFINED else abs(n)


def f_atan2(env: Env, a: Any, b: Any) -> Any:
    return double(math.atan2, a, b)


def bitwise(op: Callable[[int, int], int]) -> Callable[..., Any]:
    def impl(env: Env, a: Any, b: Any) -> Any:
        x, y = floor_int(a), floor_int(b)
        if x is UNDEFINED or y is UNDEFINED:
            return UNDEFINED
        return op(x, y)

    return impl


def f_bitnot(env: Env, a: Any) -> Any:
    x = floor_int(a)
    return UNDEFINED if x is UNDEFINED else ~x


def f_ceil(env: Env, a: Any) -> Any:
    return round_to_int(a, ROUND_CEILING)


def f_floor(env: Env, a: Any) -> Any:
    return round_to_int(a, ROUND_FLOOR)


def f_round(env: Env, a: Any) -> Any:
    return round_to_int(a, ROUND_HALF_UP)


def f_sign(env: Env, a: Any) -> Any:
    n = to_number(a)
    if n is UNDEFINED:
        return UNDEFINED
    return (n > 0) - (n < 0)


def f_mod(env: Env, a: Any, b: Any) -> Any:
    from ..types import modulo

    return modulo(a, b)


def f_ln(env: Env, a: Any) -> Any:
    return double(math.log, a)


def f_log(env: Env, a: Any) -> Any:
    return double(math.log10, a)


def f_power(env: Env, a: Any, b: Any) -> Any:
    return double(math.pow, a, b)


def f_sqrt(env: Env, a: Any) -> Any:
    return double(math.sqrt, a)


def f_nanvl(env: Env, a: Any, b: Any) -> Any:
    if a is UNDEFINED or a is None:
        return b
    if type(a) is Decimal and a.is_nan():
        return b
    return a


def f_trunc(env: Env, a: Any, b: Any) -> Any:
    n = to_number(a)
    places = floor_int(b)
    if n is UNDEFINED or places is UNDEFINED:
        return UNDEFINED
    if type(n) is int:
        return n
    places = min(max(places, 0), 34)
    try:
        d = n.quantize(Decimal(1).scaleb(-places), rounding=ROUND_DOWN)
    except ArithmeticError:
        return UNDEFINED
    if d == d.to_integral_value():
        return int(d)
    return d.normalize()


def f_rand(env: Env) -> Any:
    return float_to_decimal(random.random())  # noqa: S311 - AWS's rand() is not for secrets
