"""The topic rules the running engine obeys: the project's files, then what the API changed.

At start the rules are the project's (``iot_rules/rules/*.json``). ``CreateTopicRule``,
``ReplaceTopicRule``, ``Enable``/``DisableTopicRule`` and ``DeleteTopicRule`` change that set
in the running engine at once and are kept in ``<state>/iot/topic-rules.json`` (0600), so they
last across restarts: a rule created through the API is there after ``iotchat up`` again, a
project rule deleted or disabled through it stays so. A change the engine cannot compile is
refused and changes nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.state_files import write_atomic
from iot_rules.loader import RuleDefinition, validate_payload

from .errors import invalid, iot_error, not_found

STATE_FILE = Path("iot") / "topic-rules.json"
FORMAT_VERSION = 1
# A local bound, so the engine and the state file stay small (AWS's own quotas:
# https://docs.aws.amazon.com/general/latest/gr/iot-core.html); beyond it LimitExceededException.
MAX_RULES = 1000
_FROM = re.compile(r"\bFROM\s+'([^']*)'", re.IGNORECASE)


@dataclass
class StoredRule:
    definition: RuleDefinition
    created_at: float


@dataclass
class TopicRules:
    """The rule set: ``apply`` hands every definition to the engine (it raises on a rule it
    cannot compile, leaving the engine as it was)."""

    state_dir: Path
    project: list[RuleDefinition]
    apply: Callable[[list[RuleDefinition]], None] = lambda definitions: None
    _changed: dict[str, dict[str, Any]] = field(default_factory=dict)
    _deleted: set[str] = field(default_factory=set)
    _project_time: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        path = self.path
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("format") != FORMAT_VERSION:
                raise ValueError(f"{path.name}: unsupported format {data.get('format')!r}")
            self._changed = dict(data.get("rules", {}))
            self._deleted = set(data.get("deleted", []))

    @property
    def path(self) -> Path:
        return self.state_dir / STATE_FILE

    # ------------------------------------------------------------------ reading

    def rules(self) -> dict[str, StoredRule]:
        """Every rule by name: the project's, then the API's changes over them."""
        found = {
            d.name: StoredRule(d, self._project_time)
            for d in self.project
            if d.name not in self._deleted
        }
        for name, stored in self._changed.items():
            found[name] = StoredRule(RuleDefinition(name, stored["payload"]), stored["createdAt"])
        return dict(sorted(found.items()))

    def definitions(self) -> list[RuleDefinition]:
        return [stored.definition for stored in self.rules().values()]

    def get(self, name: str) -> StoredRule:
        stored = self.rules().get(name)
        if stored is None:
            raise not_found(f"The rule {name} does not exist")
        return stored

    # ------------------------------------------------------------------ changes

    def create(self, name: str, payload: dict[str, Any]) -> None:
        rules = self.rules()
        if name in rules:
            raise iot_error("ResourceAlreadyExistsException", f"The rule {name} already exists")
        if len(rules) >= MAX_RULES:
            raise iot_error("LimitExceededException", f"at most {MAX_RULES} topic rules")
        self._change(name, payload, time.time())

    def replace(self, name: str, payload: dict[str, Any]) -> None:
        stored = self.get(name)
        self._change(name, payload, stored.created_at)

    def set_disabled(self, name: str, disabled: bool) -> None:
        stored = self.get(name)
        payload = {**stored.definition.payload, "ruleDisabled": disabled}
        self._change(name, payload, stored.created_at)

    def delete(self, name: str) -> None:
        self.get(name)
        changed, deleted = dict(self._changed), set(self._deleted)
        changed.pop(name, None)
        if any(d.name == name for d in self.project):
            deleted.add(name)
        self._commit(changed, deleted)

    def _change(self, name: str, payload: dict[str, Any], created_at: float) -> None:
        problems = validate_payload(name, payload, name)
        if problems:
            raise invalid("; ".join(problems))
        changed = {**self._changed, name: {"payload": payload, "createdAt": created_at}}
        self._commit(changed, self._deleted - {name})

    def _commit(self, changed: dict[str, dict[str, Any]], deleted: set[str]) -> None:
        """Run the new set in the engine, then keep it; nothing changes if the engine refuses."""
        before = (self._changed, self._deleted)
        self._changed, self._deleted = changed, deleted
        try:
            self.apply(self.definitions())
        except Exception as exc:  # SqlError, KeyError: the engine's word on a broken rule
            self._changed, self._deleted = before
            raise iot_error("SqlParseException", f"{type(exc).__name__}: {exc}") from None
        document = {"format": FORMAT_VERSION, "rules": changed, "deleted": sorted(deleted)}
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(document, indent=1).encode())


def topic_pattern(sql: str) -> str:
    """The topic filter a rule's SQL reads from (``ListTopicRules``' ``topicPattern``)."""
    found = _FROM.search(sql)
    return found.group(1) if found else ""
