"""Small JSON documents under the state dir, written atomically so a crash never half-writes.

Files hold secrets (password hashes, issued credentials, the signing key), so they are
created readable by the owner only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def load_json(path: Path, default: Any) -> Any:
    """The document at ``path``, or ``default`` when there is none yet."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return default


def save_json(path: Path, document: Any) -> None:
    """Replace ``path`` with ``document`` in one rename; mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(document, handle, separators=(",", ":"))
    os.replace(tmp, path)


def append_line(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (the outbox): readable by the owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
