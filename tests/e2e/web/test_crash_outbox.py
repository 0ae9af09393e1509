"""Nothing a person sent is lost, even when the whole stack dies (issue 20): a page in chromium
and a Python client talk in a room, the stack is SIGKILLed mid-stream and started again on the
same state and ports, both reconnect by themselves, and every message either sent is stored
exactly once and shown once in the page."""

from __future__ import annotations

import os
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("playwright", reason="playwright is a dev extra")

from benchmarks.reliability.stack_process import StackProcess
from benchmarks.reliability.store import admin_client
from client import events
from client.chat_client import ChatClient
from client.identity import Identity, SessionFile
from client.stack_file import load_stack_file
from tests.e2e.web.pages import Tab
from tests.support.messages_table import query_pages, room_conv
from tests.support.waiting import poll, wait_for

# Types each text into the composer and presses Enter, with no wait between them.
SEND_ALL = """(texts) => {
  const box = document.getElementById("text");
  for (const text of texts) {
    box.value = text;
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  }
}"""

# True once the page shows the message with this text as carried back (no longer pending).
CARRIED = """(text) => [...document.querySelectorAll("#messages li:not(.pending)")].some(
  (li) => [...li.querySelectorAll(".text")].some((t) => t.textContent === text))"""


def _stored(info: dict[str, Any], room: str) -> list[tuple[str, str]]:
    """(id, body) of every item the room's conversation holds: a Query as the admin."""
    request = {
        "TableName": f"{info['stackName']}-messages",
        "KeyConditionExpression": "conv = :c",
        "ExpressionAttributeValues": {":c": {"S": room_conv(room)}},
        "ProjectionExpression": "id, #b",
        "ExpressionAttributeNames": {"#b": "body"},
        "ConsistentRead": True,
    }
    dynamodb = admin_client(info, "dynamodb")
    return [
        (item["id"]["S"], item.get("body", {}).get("S", ""))
        for page in query_pages(dynamodb, request)
        for item in page["Items"]
    ]


def _web_outbox(tab: Tab) -> str | None:
    return tab.page.evaluate(
        "(id) => sessionStorage.getItem('iotchat.outbox.' + id)", tab.client_id
    )


@pytest.mark.timeout(180)
def test_a_stack_killed_while_a_page_and_a_python_client_send_stores_each_message_once(
    browser: Any, tmp_path: Path
) -> None:
    stack = StackProcess(tmp_path / "state")
    info = stack.start()
    bob: ChatClient | None = None
    ada: Tab | None = None
    try:
        room = f"crash-{uuid.uuid4().hex[:10]}"
        ada = Tab(browser, info["web"]["url"], "ada").as_guest("Ada")
        ada.join(room)
        stack_info = load_stack_file(stack.stack_file)
        guest = Identity.guest(stack_info, SessionFile(tmp_path / "bob.json"))
        bob = ChatClient(stack_info, guest, min_backoff=0.5, max_backoff=2.0).start()
        bob.join(room)
        assert bob.wait_for(lambda e: isinstance(e, events.History) and e.target == room)

        web_texts: list[str] = []
        python_ids: list[str] = []

        def web_says(n: int, what: str) -> None:
            for k in range(n):
                web_texts.append(f"{what} from the page {k}")
                ada.say(web_texts[-1])

        def python_says(n: int, what: str) -> None:
            python_ids.extend(bob.say(room, f"{what} from python {k}") for k in range(n))

        web_says(5, "before the crash")
        python_says(10, "before the crash")
        # The room carried these, and (the store keeping up) stored them.
        carried = bob.wait_for(
            lambda e: isinstance(e, events.Message) and e.id == python_ids[-1], 20
        )
        assert carried is not None
        ada.expect_message(web_texts[-1])
        # Then the store stalls (dynalite frozen, as a store stuck on its disk is), both send a
        # burst, and the stack dies, store and all, the moment the page saw its own last one
        # carried back: the room showed what history will never hold, and only the outboxes
        # (checking history after the reconnect) bring those back.
        store = stack.dynalite_pid()
        os.kill(store, signal.SIGSTOP)
        try:
            python_says(10, "in flight")
            burst = [f"in flight from the page {k}" for k in range(5)]
            web_texts.extend(burst)
            ada.page.evaluate(SEND_ALL, burst)
            ada.page.wait_for_function(CARRIED, arg=burst[-1], polling=20, timeout=20_000)
            os.kill(stack.pid, signal.SIGKILL)
        finally:
            os.kill(store, signal.SIGKILL)
        ports = stack.ports()
        stack.kill()  # reaps it and waits for the rest of its children to go
        python_says(3, "while the stack is down")

        stack.start(ports)
        back = bob.wait_for(lambda e: isinstance(e, events.Connected) and e.resumed, 60)
        assert back is not None, "the Python client did not reconnect"
        wait_for(lambda: bob.outbox.pending_ids() == [], timeout=60, interval=0.2)
        # The page's own backoff brings it back; its outbox then empties as messages come back.
        wait_for(lambda: ada.page.locator("#conn-status[data-state=online]").count(), 60, 0.2)
        wait_for(lambda: _web_outbox(ada) in ("[]", None), timeout=60, interval=0.2)

        missing: list[str] = []

        def everything_stored() -> list[tuple[str, str]] | None:
            items = _stored(stack.info, room)
            ids = {i for i, _ in items}
            bodies = {b for _, b in items}
            missing[:] = [*(set(python_ids) - ids), *(set(web_texts) - bodies)]
            return None if missing else items

        items = poll(everything_stored, 60, 0.5, lambda: AssertionError(f"never stored: {missing}"))
        ids = Counter(i for i, _ in items)
        assert [i for i, n in ids.items() if n > 1] == []  # no message stored twice
        assert sorted(python_ids) == sorted(i for i, b in items if "from python" in b)
        assert sorted(web_texts) == sorted(b for _, b in items if "from the page" in b)

        # The page shows each of them once: the Python ones live or from the gap-filling page.
        everyone = [*web_texts, *(b for _, b in items if "from python" in b)]
        wait_for(lambda: set(everyone) <= set(ada.messages()), timeout=30, interval=0.2)
        shown = Counter(ada.messages())
        assert {text: shown[text] for text in everyone} == {text: 1 for text in everyone}
        assert ada.page_errors == [] and ada.dialogs == []
    finally:
        if bob is not None:
            bob.stop()
        if ada is not None:
            ada.close()
        stack.close()
