"""IoT policy attachments (``iot.attach_policy``) whose target is a Cognito identity id.

A signed-in identity needs an IoT policy attached to it as well as its role's policy; the
AWS deployment attaches one on first sign-in and so does the local identity pool. The
policy engine reads this store and subscribes to changes to drop cached decisions.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .store import load_json, save_json

ATTACHMENTS_FILE = "policy-attachments.json"

Listener = Callable[[str, str], None]  # (policy name, target)


class PolicyAttachments:
    """target -> attached policy names, persisted as JSON."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / ATTACHMENTS_FILE
        self._targets: dict[str, list[str]] = load_json(self.path, {})
        self._listeners: list[Listener] = []

    def on_change(self, listener: Listener) -> None:
        """Call ``listener(policy_name, target)`` after every attach or detach."""
        self._listeners.append(listener)

    def attach_policy(self, policy_name: str, target: str) -> bool:
        """Attach (idempotent, as in AWS); True when it was not attached before."""
        names = self._targets.setdefault(target, [])
        if policy_name in names:
            return False
        names.append(policy_name)
        self._changed(policy_name, target)
        return True

    def detach_policy(self, policy_name: str, target: str) -> bool:
        names = self._targets.get(target, [])
        if policy_name not in names:
            return False
        names.remove(policy_name)
        self._changed(policy_name, target)
        return True

    def _changed(self, policy_name: str, target: str) -> None:
        """Persist, then tell the listeners (after, so they read the new state)."""
        save_json(self.path, self._targets)
        for listener in self._listeners:
            listener(policy_name, target)

    def list_attached(self, target: str) -> list[str]:
        return list(self._targets.get(target, ()))
