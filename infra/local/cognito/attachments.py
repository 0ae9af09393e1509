"""IoT policy attachments (``iot.attach_policy``) whose target is a Cognito identity id.

A signed-in identity needs an IoT policy attached to it as well as its role's policy; the
AWS deployment attaches one on first sign-in and so does the local identity pool. The
policy engine reads this store (from memory, on the event loop) and subscribes to changes
to drop cached decisions; each change writes one row of the Cognito database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .store import Database

ATTACHMENTS_FILE = "policy-attachments.json"  # an earlier version's store, imported once

Listener = Callable[[str, str], None]  # (policy name, target)


class PolicyAttachments:
    """target -> attached policy names, in attach order."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.import_legacy(database.path.parent / ATTACHMENTS_FILE, _import)
        self._targets: dict[str, list[str]] = {}
        for row in database.query("SELECT target, policy FROM attachments ORDER BY seq"):
            self._targets.setdefault(row["target"], []).append(row["policy"])
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    @classmethod
    def open(cls, directory: Path) -> PolicyAttachments:
        return cls(Database.open(directory))

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(policy_name, target)`` after every attach or detach (from the
        thread that made the change)."""
        self._listeners.append(listener)

    def attach_policy(self, policy_name: str, target: str) -> bool:
        """Attach (idempotent, as in AWS); True when it was not attached before."""
        with self._lock:
            names = self._targets.get(target, [])
            if policy_name in names:
                return False
            self.database.execute(
                "INSERT OR IGNORE INTO attachments (target, policy) VALUES (?, ?)",
                (target, policy_name),
            )
            self._targets[target] = [*names, policy_name]
        self._changed(policy_name, target)
        return True

    def detach_policy(self, policy_name: str, target: str) -> bool:
        with self._lock:
            names = self._targets.get(target, [])
            if policy_name not in names:
                return False
            self.database.execute(
                "DELETE FROM attachments WHERE target = ? AND policy = ?", (target, policy_name)
            )
            remaining = [name for name in names if name != policy_name]
            if remaining:
                self._targets[target] = remaining
            else:
                del self._targets[target]
        self._changed(policy_name, target)
        return True

    def _changed(self, policy_name: str, target: str) -> None:
        """Tell the listeners, after the change is stored (so they read the new state)."""
        for listener in self._listeners:
            listener(policy_name, target)

    def list_attached(self, target: str) -> list[str]:
        return list(self._targets.get(target, ()))


def _import(conn: sqlite3.Connection, document: Any) -> None:
    for target, names in dict(document).items():
        for name in names:
            conn.execute(
                "INSERT OR IGNORE INTO attachments (target, policy) VALUES (?, ?)",
                (target, name),
            )
