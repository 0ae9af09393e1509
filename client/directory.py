"""Who is who: the profiles a client has seen, so it shows stored names and handles.

Room messages carry only their sender's person id (docs/protocol.md, "Names and handles"): the
name a message claims is never shown. Presence, ``who`` entries and history carry profiles, and
``profile`` events carry changes; the chat client asks ``whois`` for a sender it has not seen.
Bounded: the least recently used profiles are forgotten past ``limit``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from .events import Profile

DIRECTORY_LIMIT = 5_000


class Directory:
    """Person id -> :class:`Profile`; thread-safe (events arrive on the transport's thread)."""

    def __init__(self, limit: int = DIRECTORY_LIMIT) -> None:
        self._limit = limit
        self._profiles: OrderedDict[str, Profile] = OrderedDict()
        self._lock = threading.Lock()

    def learn(self, profile: Profile) -> None:
        """Remember ``profile``; a partial one (no handle) keeps what is already known."""
        with self._lock:
            known = self._profiles.get(profile.person)
            if known is not None and profile.handle is None:
                profile = Profile(
                    profile.person,
                    known.handle,
                    profile.name or known.name,
                    known.guest,
                    known.device,
                )
            self._profiles[profile.person] = profile
            self._profiles.move_to_end(profile.person)
            while len(self._profiles) > self._limit:
                self._profiles.popitem(last=False)

    def get(self, person: str) -> Profile | None:
        with self._lock:
            return self._profiles.get(person)

    def find(self, token: str) -> list[Profile]:
        """Profiles whose handle (with or without ``@``), person id or name is ``token``."""
        handle = token.removeprefix("@").lower()
        with self._lock:
            profiles = list(self._profiles.values())
        exact = [p for p in profiles if p.person == token or (p.handle or "").lower() == handle]
        return exact or [p for p in profiles if p.name == token]

    def all(self) -> list[Profile]:
        with self._lock:
            return list(self._profiles.values())
