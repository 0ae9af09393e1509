"""A stack started on the state of the one-session contract keeps its history (docs/data-model.md,
"Migration"): a person who chatted with their identity id as client id comes back in a session
of their own, finds their room, their messages as their own, and is not shown online by an old
presence item."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from infra.local.stack import StackOptions
from tests.e2e.chat.conftest import People, room_topic, unique, wait_connection_recorded
from tests.support.stack import run_stack_in_thread, stack_options
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackOptions]:
    yield stack_options(tmp_path_factory.mktemp("migration") / "state")


def test_old_state_keeps_its_history_members_and_no_stale_presence(state: StackOptions) -> None:
    room = unique("room")
    with run_stack_in_thread(state) as stack:
        crowd = People(stack)
        try:
            # As earlier versions did: the bare identity id is the client id.
            ada = crowd.connect("Ada")
            wait_connection_recorded(ada)
            ada.join(room)
            said = ada.say(room, "from before sessions")
            wait_for(lambda: len(ada.history("room", room)["messages"]) == 1, 10, 0.05)
            identity = (ada.person, ada.creds)
            bob = crowd.connect("Bob")
            bob.join(room)
            bob.disconnect()
        finally:
            crowd.close()
        # Bob's presence as an earlier version wrote it: "connected", without a sessions map.
        stack.client("dynamodb").put_item(
            TableName=f"{stack.info['stackName']}-state",
            Item={
                "pk": {"S": f"client#{bob.person}"},
                "sk": {"S": "presence"},
                "connected": {"BOOL": True},
                "version": {"N": "3"},
                "eventTs": {"N": "1"},
                "sessionId": {"S": "s"},
            },
        )

    with run_stack_in_thread(state) as stack:
        crowd = People(stack)
        try:
            tab = crowd.connect("Ada", identity=identity, session="web-0123456789ab")
            wait_connection_recorded(tab)
            # Still a member (no join needed to ask who), online as a person; Bob's old
            # "connected" item does not make him online.
            assert tab.who(room) == {tab.person}
            page = tab.history("room", room)
            assert [(m["id"], m["sender"]) for m in page["messages"]] == [(said, tab.person)]
            assert tab.subscribe(room_topic(room)) == [1]
            now = tab.say(room, "from a session")
            got = tab.wait_for_message(room_topic(room), lambda m: m.get("id") == now, "it")
            assert got["sender"] == tab.person  # the same person as before sessions
        finally:
            crowd.close()
