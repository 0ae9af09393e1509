"""A clock the test moves by hand, for code that takes a ``clock`` callable."""

from __future__ import annotations


class Clock:
    """Returns ``now`` when called; the test sets ``now`` to move time."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
