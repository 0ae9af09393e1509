"""The project's policy files: ``policies/iot/*.json`` (IoT policies) and ``policies/iam/*.json``
(IAM role policies), loaded by the local stack and the CloudFormation builder alike."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policies.model import Policy
from policies.render import render

POLICY_DIR = Path(__file__).resolve().parent
KINDS = ("iot", "iam")


def policy_names(kind: str) -> list[str]:
    """Names (file stems) of the policies of one kind, sorted."""
    if kind not in KINDS:
        raise ValueError(f"unknown policy kind {kind!r}")
    return sorted(path.stem for path in (POLICY_DIR / kind).glob("*.json"))


def load_document(kind: str, name: str) -> dict[str, Any]:
    """The raw document with its ``{region}``/``{account}``/``{stack}`` placeholders."""
    if kind not in KINDS or name not in policy_names(kind):
        raise KeyError(f"no policy {kind}/{name}")
    return json.loads((POLICY_DIR / kind / f"{name}.json").read_text(encoding="utf-8"))


def load_policy(kind: str, name: str, *, region: str, account: str, stack: str) -> Policy:
    """The rendered, validated policy, named ``<kind>/<name>``."""
    document = render(load_document(kind, name), region=region, account=account, stack=stack)
    return Policy.parse(f"{kind}/{name}", document)
