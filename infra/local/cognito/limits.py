"""What the local Cognito allows a caller: request rates, failed attempts, unconfirmed users.

Everything Cognito serves here is unauthenticated (a guest or a user signing in has no AWS
credentials yet), so these limits are the only thing between a flood and the stack:

- **Request rate** (:class:`Throttle`): a token bucket per source IP and one for all sources
  together (on loopback every caller may pick its own 127.x.y.z address, so the global bucket
  is what really bounds a flood). Over the rate, Cognito answers ``TooManyRequestsException``
  (HTTP 400), as AWS does when an account exceeds an operation's request rate quota:
  https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html. AWS's quotas are
  per account and far lower (``GetId``: 25 requests per second); the local defaults are
  generous so a test can create thousands of guests in seconds.
- **Failed sign-in attempts**: after ``sign_in_free_failures`` wrong passwords the user is
  locked out for ``lockout_base`` seconds, doubling with each further failure up to
  ``lockout_max``; attempts during a lockout answer ``NotAuthorizedException`` "Password
  attempts exceeded" and do not lengthen it; a successful sign-in after the lockout, or
  ``lockout_reset`` seconds without attempts, starts over. This is AWS's documented lockout
  (five failures, then 2^(n-5) seconds, up to about 15 minutes):
  https://docs.aws.amazon.com/cognito/latest/developerguide/authentication.html#authentication-flow-lockout
- **Confirmation codes**: ``code_attempts`` wrong codes invalidate the code (a new one is
  needed, from ``ResendConfirmationCode``), and at most ``code_sends`` codes are sent per
  ``code_send_window`` (then ``LimitExceededException``), so guessing a 6-digit code takes
  longer than anyone will wait. The error names are ConfirmSignUp's:
  https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_ConfirmSignUp.html
- **Unconfirmed users** are deleted ``unconfirmed_lifetime`` after sign-up (AWS keeps them
  until an administrator deletes them; locally nobody would, and a name someone signed up
  without owning the address would stay taken forever).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

CODE_LIFETIME = 24 * 3600.0  # Cognito's sign-up codes are valid for 24 hours


@dataclass(frozen=True)
class CognitoLimits:
    # Requests per second (and burst) from one source IP, and from all sources together.
    request_rate: float = 1000.0
    request_burst: float = 2000.0
    global_rate: float = 2000.0
    global_burst: float = 4000.0
    # Operations waiting for a worker thread (hashing, the stores) before new ones are turned
    # away with TooManyRequestsException instead of queueing without bound.
    max_pending: int = 512
    # Sign-in lockout, as AWS documents it.
    sign_in_free_failures: int = 5
    lockout_base: float = 1.0
    lockout_max: float = 900.0
    lockout_reset: float = 900.0
    # Confirmation codes.
    code_lifetime: float = CODE_LIFETIME
    code_attempts: int = 5
    code_sends: int = 5
    code_send_window: float = 3600.0
    # Unconfirmed sign-ups are deleted after this long.
    unconfirmed_lifetime: float = 7 * 24 * 3600.0

    def lockout(self, failures: int) -> float:
        """Seconds of lockout after the ``failures``-th consecutive failed sign-in (0: none)."""
        if failures < self.sign_in_free_failures:
            return 0.0
        exponent = min(failures - self.sign_in_free_failures, 64)
        return float(min(self.lockout_base * 2.0**exponent, self.lockout_max))


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; :meth:`take` spends one if there is one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self.tokens = self.burst
        self.stamp = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.refill(now)
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


class Throttle:
    """A bucket per source and one for everyone; at most ``max_sources`` buckets are kept (the
    least recently used go first: a forgotten source starts again with a full bucket, which
    the global bucket still bounds)."""

    def __init__(
        self,
        limits: CognitoLimits,
        clock: Callable[[], float] = time.monotonic,
        max_sources: int = 10_000,
    ) -> None:
        self.limits = limits
        self.clock = clock
        self.max_sources = max_sources
        self._global = TokenBucket(limits.global_rate, limits.global_burst, clock())
        self._sources: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()
        self.refused = 0

    def allow(self, source: str) -> bool:
        """True when a request from ``source`` may go ahead now (and spends its tokens)."""
        now = self.clock()
        with self._lock:
            bucket = self._sources.get(source)
            if bucket is None:
                bucket = TokenBucket(self.limits.request_rate, self.limits.request_burst, now)
                self._sources[source] = bucket
                if len(self._sources) > self.max_sources:
                    self._sources.popitem(last=False)
            else:
                self._sources.move_to_end(source)
            bucket.refill(now)
            self._global.refill(now)
            if bucket.tokens < 1.0 or self._global.tokens < 1.0:
                self.refused += 1
                return False
            bucket.tokens -= 1.0
            self._global.tokens -= 1.0
            return True


__all__ = ["CODE_LIFETIME", "CognitoLimits", "Throttle", "TokenBucket"]
