"""The hash functions (``md2``, ``md5``, ``sha*``): hex digests of a value's string form."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from ..md2 import md2_hex
from ..types import (
    UNDEFINED,
    to_str,
)
from .base import Env
from .strings import java_utf8


def hash_function(name: str) -> Callable[..., Any]:
    def impl(env: Env, a: Any) -> Any:
        s = to_str(a)
        if s is UNDEFINED:
            return UNDEFINED
        return hashlib.new(name, java_utf8(s)).hexdigest()

    return impl


def f_md2(env: Env, a: Any) -> Any:
    s = to_str(a)
    return UNDEFINED if s is UNDEFINED else md2_hex(java_utf8(s))
