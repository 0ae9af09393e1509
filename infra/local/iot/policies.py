"""The account's IoT policies: the project's (``policies/iot/``, read-only here) and the ones
``CreatePolicy`` made, with their versions, kept in ``<state>/iot/policies.json`` (0600).

A created policy is parsed and checked as the gateway will evaluate it
(:class:`policies.model.Policy`); attached to a certificate or identity it takes effect at the
next decision: ``on_change`` drops the gateway's cached decisions. As on AWS a policy keeps at
most five versions
(https://docs.aws.amazon.com/iot/latest/apireference/API_CreatePolicyVersion.html).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from infra.local.gateway.policy_authorizer import IOT_POLICY_FILES
from infra.local.state_files import write_atomic
from policies.documents import load_document
from policies.model import Policy, PolicyError
from policies.render import render

from .errors import invalid, iot_error, not_found

STATE_FILE = Path("iot") / "policies.json"
MAX_VERSIONS = 5
# A local bound on created policies, so the state file stays small; beyond it LimitExceeded.
MAX_POLICIES = 1000
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")


class IotPolicies:
    """Policy documents by name; created ones parsed once and kept."""

    def __init__(self, state_dir: Path, names: Mapping[str, str]) -> None:
        self.path = state_dir / STATE_FILE
        self._project = {
            name: json.dumps(render(load_document("iot", file), **names), indent=2)
            for name, file in IOT_POLICY_FILES.items()
        }
        self._created: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            self._created = json.loads(self.path.read_text(encoding="utf-8"))["policies"]
        self._parsed: dict[str, Policy] = {}
        self._lock = threading.Lock()
        self.on_change: list[Callable[[], None]] = []
        self._project_time = time.time()

    def names(self) -> list[str]:
        return sorted({*self._project, *self._created})

    def exists(self, name: str) -> bool:
        return name in self._project or name in self._created

    def describe(self, name: str) -> dict[str, Any]:
        """``{document, defaultVersionId, versions: [{versionId, document, createDate}]}``."""
        if name in self._project:
            version = {"versionId": "1", "document": self._project[name]}
            return {
                "document": self._project[name],
                "defaultVersionId": "1",
                "versions": [{**version, "createDate": self._project_time}],
            }
        stored = self._created.get(name)
        if stored is None:
            raise not_found(f"Policy {name} does not exist")
        default = next(v for v in stored["versions"] if v["versionId"] == stored["default"])
        return {**stored, "document": default["document"], "defaultVersionId": stored["default"]}

    def policy(self, name: str) -> Policy | None:
        """The created policy's default version, as the gateway evaluates it."""
        with self._lock:
            parsed = self._parsed.get(name)
            if parsed is None and name in self._created:
                parsed = self._parsed[name] = Policy.parse(
                    f"iot/{name}", self.describe(name)["document"]
                )
            return parsed

    def create(self, name: str, document: str) -> dict[str, Any]:
        if not POLICY_NAME.fullmatch(name or ""):
            raise invalid(f"invalid policy name: {name!r}")
        if self.exists(name):
            raise iot_error("ResourceAlreadyExistsException", f"Policy {name} already exists")
        if len(self._created) >= MAX_POLICIES:
            raise iot_error("LimitExceededException", f"at most {MAX_POLICIES} created policies")
        text = _checked(name, document)
        version = {"versionId": "1", "document": text, "createDate": time.time()}
        self._save(name, {"versions": [version], "default": "1"})
        return self.describe(name)

    def create_version(self, name: str, document: str, set_as_default: bool) -> dict[str, Any]:
        if name in self._project:
            raise invalid(f"{name} is the project's policy: change policies/iot/ instead")
        stored = self._created.get(name)
        if stored is None:
            raise not_found(f"Policy {name} does not exist")
        if len(stored["versions"]) >= MAX_VERSIONS:
            raise iot_error(
                "VersionsLimitExceededException",
                f"The policy {name} already has the maximum number of versions ({MAX_VERSIONS})",
            )
        text = _checked(name, document)
        number = str(max(int(v["versionId"]) for v in stored["versions"]) + 1)
        version = {"versionId": number, "document": text, "createDate": time.time()}
        updated = {
            "versions": [*stored["versions"], version],
            "default": number if set_as_default else stored["default"],
        }
        self._save(name, updated)
        return version

    def _save(self, name: str, stored: dict[str, Any]) -> None:
        with self._lock:
            self._created = {**self._created, name: stored}
            self._parsed.pop(name, None)
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_atomic(self.path, json.dumps({"policies": self._created}, indent=1).encode())
        for callback in list(self.on_change):
            callback()


def _checked(name: str, document: str) -> str:
    """The document, once it parses as an IoT policy; MalformedPolicyException otherwise."""
    try:
        Policy.parse(f"iot/{name}", document)
    except PolicyError as exc:
        raise iot_error("MalformedPolicyException", str(exc)) from None
    return document
