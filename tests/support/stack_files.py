"""The files a test stack (or a benchmark's gateway) reads: a folder of rules, a manifest, and
the pieces they are made of that several tests write alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.render import LOCAL_NAMES

# The role the chat's republish rules act as (policies/iam/rule-republish.json).
REPUBLISH_ROLE = f"arn:aws:iam::{LOCAL_NAMES['account']}:role/{LOCAL_NAMES['stack']}-rule-republish"


def republish(topic: str, *, role: str = REPUBLISH_ROLE, qos: int = 1) -> dict[str, Any]:
    """A rule's republish action to ``topic`` (a substitution template), acting as ``role``."""
    return {"republish": {"roleArn": role, "topic": topic, "qos": qos}}


def write_rules(root: Path, rules: dict[str, dict[str, Any]]) -> Path:
    """``root/rules``, made and holding ``<name>.json`` for each rule: the stack's rules_dir."""
    folder = root / "rules"
    folder.mkdir()
    for name, rule in rules.items():
        (folder / f"{name}.json").write_text(json.dumps(rule))
    return folder


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    """``root/manifest.json`` holding ``manifest``: the stack's manifest option."""
    path = root / "manifest.json"
    path.write_text(json.dumps(manifest))
    return path


def keyed_table(
    name: str, hash_key: tuple[str, str], range_key: tuple[str, str], **extra: Any
) -> dict[str, Any]:
    """A manifest table with a hash and a range key, each given as (attribute name, type)."""
    return {
        "TableName": name,
        **extra,
        "KeySchema": [
            {"AttributeName": hash_key[0], "KeyType": "HASH"},
            {"AttributeName": range_key[0], "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": key, "AttributeType": kind} for key, kind in (hash_key, range_key)
        ],
    }
