"""The write-through journal of retained messages and persistent sessions (journal.py): what
a replay gives back, a line cut short by a crash, compaction, and the files' modes. The
SIGKILL of a whole stack is tests/e2e/reliability/test_crash_state.py."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.local.gateway.journal import Journal
from infra.local.gateway.session import Message


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def journal(path: Path, loop: asyncio.AbstractEventLoop, sessions: dict[str, Any]) -> Journal:
    return Journal(path, loop, lambda client_id, now: sessions.get(client_id))


def retained(topic: str, payload: bytes) -> Message:
    return Message(topic, payload, 1, True)


def test_replay_gives_the_last_state_of_each_topic_and_session(tmp_path, loop):
    path = tmp_path / "gateway" / "journal.jsonl"
    sessions: dict[str, Any] = {"keeper": {"clientId": "keeper", "messages": [1]}}
    writer = journal(path, loop, sessions)
    writer.retained_changed("a", retained("a", b"first"))
    writer.retained_changed("b", retained("b", b"kept"))
    writer.session_changed("keeper")
    writer.session_changed("gone")  # no record: a session that ended
    writer.flush()
    writer.retained_changed("a", retained("a", b"last"))
    writer.retained_changed("b", None)  # deleted
    sessions["keeper"] = {"clientId": "keeper", "messages": [1, 2]}
    writer.session_changed("keeper")
    writer.flush()
    writer.close()
    assert writer.writes == 2  # one append per flush, whatever changed in between

    records, restored = journal(path, loop, {}).load()
    assert [(r["topic"], r["payload"]) for r in records] == [("a", "bGFzdA==")]  # b"last"
    assert restored == [{"clientId": "keeper", "messages": [1, 2]}]


def test_a_line_cut_short_by_a_crash_is_ignored(tmp_path, loop):
    path = tmp_path / "journal.jsonl"
    writer = journal(path, loop, {})
    writer.retained_changed("a", retained("a", b"whole"))
    writer.flush()
    writer.close()
    with path.open("ab") as out:
        out.write(b'{"r": {"topic": "b", "payl')  # the kill came mid-write
    records, _ = journal(path, loop, {}).load()
    assert [r["topic"] for r in records] == ["a"]


def test_compaction_keeps_one_line_per_live_item(tmp_path, loop):
    path = tmp_path / "journal.jsonl"
    sessions = {"keeper": {"clientId": "keeper"}}
    writer = journal(path, loop, sessions)
    for n in range(50):
        writer.retained_changed("a", retained("a", b"v%d" % n))
        writer.flush()
    writer.compact([retained("a", b"v49")], ["keeper", "unknown"])
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [next(iter(line)) for line in lines] == ["r", "s"]
    records, restored = journal(path, loop, {}).load()
    assert [r["payload"] for r in records] == ["djQ5"]  # b"v49"
    assert restored == [{"clientId": "keeper"}]


def test_the_journal_is_private(tmp_path, loop):
    path = tmp_path / "state" / "gateway" / "journal.jsonl"
    writer = journal(path, loop, {})
    writer.retained_changed("a", retained("a", b"users' words"))
    writer.flush()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    writer.compact([retained("a", b"users' words")], [])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    writer.close()


def test_changes_are_written_within_one_flush_interval(tmp_path, loop):
    path = tmp_path / "journal.jsonl"
    writer = journal(path, loop, {})

    async def change_then_wait() -> None:
        writer.retained_changed("a", retained("a", b"soon"))
        assert not path.exists()  # batched, not written per change
        for _ in range(100):  # the loop's own timer writes it (FLUSH_SECONDS)
            if path.exists():
                return
            await asyncio.sleep(0.01)

    loop.run_until_complete(change_then_wait())
    assert [r["topic"] for r in journal(path, loop, {}).load()[0]] == ["a"]
    writer.close()
