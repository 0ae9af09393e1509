"""Where the local Cognito keeps its state: one SQLite database, and a few small JSON files.

Identities, logins, issued credentials, users, refresh tokens and policy attachments live in
``cognito.sqlite3`` (standard-library ``sqlite3``, write-ahead log): each call writes the rows
it changes, never the whole store, and the stack reaches it from worker threads only (never on
the event loop). Earlier versions kept ``identities.json``, ``users.json`` and
``policy-attachments.json``; :meth:`Database.import_legacy` moves them in once.

Files hold secrets (password hashes, issued credentials, the signing key, the outbox's codes),
so every one of them is created readable by the owner only (0600).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DATABASE_FILE = "cognito.sqlite3"
IMPORTED_SUFFIX = ".imported"

Params = tuple[Any, ...] | Mapping[str, Any]

SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    policy_attached INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS logins (
    login TEXT PRIMARY KEY,
    identity_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS logins_by_identity ON logins (identity_id);
CREATE TABLE IF NOT EXISTS credentials (
    access_key_id TEXT PRIMARY KEY,
    secret_key TEXT NOT NULL,
    session_token TEXT NOT NULL,
    expires REAL NOT NULL,
    identity_id TEXT NOT NULL,
    authenticated INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS credentials_by_expiry ON credentials (expires);
CREATE TABLE IF NOT EXISTS users (
    key TEXT PRIMARY KEY,
    confirmed INTEGER NOT NULL,
    created REAL NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS users_by_state ON users (confirmed, created);
CREATE TABLE IF NOT EXISTS refresh_tokens (
    hash TEXT PRIMARY KEY,
    username TEXT NOT NULL,
    expires REAL NOT NULL,
    auth_time INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS refresh_by_expiry ON refresh_tokens (expires);
CREATE TABLE IF NOT EXISTS attachments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    target TEXT NOT NULL,
    policy TEXT NOT NULL,
    UNIQUE (target, policy)
);
"""


def _create_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is not there (SQLite keeps the mode, and
    gives its -wal and -shm files the database's own)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


class Database:
    """One SQLite connection shared by the worker threads, one statement or transaction at a
    time (each is microseconds; password hashing happens outside)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        _create_private(path)
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.RLock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.executescript(SCHEMA)

    @classmethod
    def open(cls, directory: Path) -> Database:
        return cls(directory / DATABASE_FILE)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The connection inside ``BEGIN IMMEDIATE`` ... ``COMMIT`` (rolled back on error)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def import_legacy(self, path: Path, load: Callable[[sqlite3.Connection, Any], None]) -> bool:
        """Move a JSON store of an earlier version into the database once: ``load`` inserts
        its rows (``INSERT OR IGNORE``, so a repeat after a crash is harmless), then the file
        is renamed ``*.imported``. An unreadable file is left where it is, and skipped."""
        try:
            document = json.loads(path.read_text())
        except FileNotFoundError:
            return False
        except ValueError:
            return False
        with self.transaction() as conn:
            load(conn, document)
        os.replace(path, path.with_name(path.name + IMPORTED_SUFFIX))
        return True


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
    """Append one JSON line (the outbox): readable by the owner only, even if an earlier
    version created the file with a wider mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "a") as handle:
        handle.write(json.dumps(record, sort_keys=True) + "\n")
