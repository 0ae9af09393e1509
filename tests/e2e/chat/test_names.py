"""Names people see are the names the backend stored: a handle chosen at sign-up (Cognito's
custom:handle), a display name set with ``name``, generated handles for guests; never the
``name`` a message claims, and never a name that hides or turns text around."""

from __future__ import annotations

import json
import unicodedata
import uuid
from pathlib import Path

import pytest

from infra.local.registry import create_device
from tests.e2e.chat.accounts import account, fresh_handle, hello, signed_in
from tests.e2e.chat.conftest import ChatClient, People, inbox, room_topic, unique
from tests.e2e.security.helpers import tls_session
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(90)


def set_name(client: ChatClient, name: str) -> dict:
    """Send ``name``; the profile or error that answers it."""
    topic = inbox(client.client_id)
    before = len(client.on(topic))
    client.send("name", name=name)
    return client.wait_for_message(
        topic,
        lambda m: m.get("type") in ("profile", "error") and "room" not in m,
        "the answer to name",
        after=before,
    )


def test_others_see_the_stored_name_never_the_claimed_one(people: People) -> None:
    ada, profile = signed_in(people, "ada")
    assert profile["person"] == ada.client_id and profile["guest"] is False
    assert profile["name"] == profile["handle"]  # until she sets one
    assert set_name(ada, "Ada Lovelace")["name"] == "Ada Lovelace"

    bob = people.connect()
    room = unique("room")
    assert bob.subscribe(room_topic(room)) == [1]
    bob.join(room)
    ada.join(room)

    claimed = ada.say(room, "I am the admin", name="Admin")
    live = bob.wait_for_message(room_topic(room), lambda m: m.get("id") == claimed, "the message")
    assert live["sender"] == ada.client_id and "name" not in live  # the claim went nowhere

    page = bob.history("room", room)
    (stored,) = [m for m in page["messages"] if m["id"] == claimed]
    assert (stored["name"], stored["handle"]) == ("Ada Lovelace", profile["handle"])
    assert stored["guest"] is False

    # The directory answers for a sender one has not met, by person id or by handle.
    for key in (ada.client_id, profile["handle"]):
        answer = bob.request("whois", "people", "type", "people", people=[key])
        assert [(p["person"], p["name"]) for p in answer["people"]] == [
            (ada.client_id, "Ada Lovelace")
        ]

    # A change reaches the room (and later history) at once.
    set_name(ada, "Countess")
    change = bob.wait_for_message(
        room_topic(room),
        lambda m: m.get("type") == "profile" and m.get("name") == "Countess",
        "Ada's new name",
    )
    assert (change["person"], change["handle"]) == (ada.client_id, profile["handle"])
    (again,) = [m for m in bob.history("room", room)["messages"] if m["id"] == claimed]
    assert again["name"] == "Countess"


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("\u202eevil", "bidirectional"),  # RIGHT-TO-LEFT OVERRIDE turns the text around
        ("Ada\u2066x\u2069", "bidirectional"),  # an isolate
        ("\u200b", "visible"),  # only a ZERO WIDTH SPACE
        ("\u200b \u3000\u2060", "visible"),  # only invisible and spacing characters
        ("   ", "visible"),
        ("a\nb", "control"),
    ],
)
def test_names_that_hide_or_turn_text_are_refused(people: People, name: str, why: str) -> None:
    guest = people.connect()
    before = hello(guest)
    error = set_name(guest, name)
    assert (error["type"], error["code"]) == ("error", "INVALID_NAME")
    assert why in error["message"]
    # Nothing changed, and a fine name still works right after.
    assert hello(guest)["name"] == before["name"]
    decomposed = "Zoe\u0301"  # e + COMBINING ACUTE ACCENT: stored as NFC "Zoé"
    assert set_name(guest, f"  {decomposed} ")["name"] == unicodedata.normalize("NFC", "Zoé")


def test_guests_get_a_generated_handle_and_stay_marked_as_guests(people: People) -> None:
    guest = people.connect()
    profile = hello(guest, name="Ada Lovelace")
    assert profile["handle"].startswith("guest-") and profile["guest"] is True
    assert profile["name"] == "Ada Lovelace"
    assert hello(guest)["handle"] == profile["handle"]  # the same one on every hello
    other = people.connect()
    assert hello(other)["handle"] != profile["handle"]


def test_a_handle_belongs_to_one_person(people: People) -> None:
    handle = fresh_handle("dup")
    first_id, first_creds, first_token = account(people.stack, handle)
    second_id, second_creds, second_token = account(people.stack, handle)  # Cognito allows it
    first = people.connect(identity=(first_id, first_creds))
    second = people.connect(identity=(second_id, second_creds))
    assert hello(first, token=first_token)["handle"] == handle
    taken = hello(second, token=second_token)
    assert (taken["type"], taken["code"]) == ("error", "HANDLE_TAKEN")
    assert hello(first, token=first_token)["handle"] == handle  # still hers


def test_a_token_of_someone_else_is_refused(people: People) -> None:
    ada_id, ada_creds, ada_token = account(people.stack, fresh_handle("ada"))
    eve, _ = signed_in(people, "eve")
    refused = hello(eve, token=ada_token)
    assert (refused["type"], refused["code"]) == ("error", "NOT_AUTHORIZED")
    forged = ada_token[:-8] + "AAAAAAAA"
    ada = people.connect(identity=(ada_id, ada_creds))
    assert hello(ada, token=forged)["code"] == "NOT_AUTHORIZED"
    assert hello(ada, token=ada_token)["type"] == "profile"


def test_direct_messages_address_people_by_handle(people: People) -> None:
    ada, _ = signed_in(people, "ada")
    bob, bob_profile = signed_in(people, "bob")
    first = unique("dm")
    ada.send_private("message", id=first, recipient=bob_profile["handle"], body="hi by handle")
    got = bob.wait_for_message(inbox(bob.client_id), lambda m: m.get("id") == first, "the DM")
    assert (got["sender"], got["recipient"]) == (ada.client_id, bob.client_id)
    lost = unique("dm")
    ada.send_private("message", id=lost, recipient="nobody-has-this", body="lost")
    assert ada.wait_error("NOT_FOUND", ref=lost)["message"]


def test_a_device_is_shown_by_its_whole_thing_name(people: People, tmp_path: Path) -> None:
    stack = people.stack
    thing = f"pi-kitchen-{uuid.uuid4().hex[:8]}"
    files = create_device(stack.stack.registry, stack.ca, thing, tmp_path / thing)
    device = tls_session(stack, files.cert_path, files.key_path)
    try:
        assert device.connect(thing) == 0  # mutual TLS, as a device connects
        room = unique("room")
        bob = people.connect()
        bob.join(room)
        hi = json.dumps({"type": "hello", "name": "Admin"}).encode()
        assert device.publish("chat/out", hi) == 0
        said = unique("m")
        message = {"type": "message", "id": said, "room": room, "body": "21.5 C", "name": "Root"}
        assert device.publish("chat/out", json.dumps(message).encode()) == 0

        def shown() -> dict | None:
            page = bob.history("room", room)
            return next((m for m in page["messages"] if m["id"] == said), None)

        found = wait_for(shown, 10, 0.05)
        assert found is not None
        assert (found["sender"], found["handle"]) == (thing, thing)  # the whole thing name
        assert found["name"] == "Admin"  # the display name it set, never the one it claimed
        answer = bob.request("whois", "people", "type", "people", people=[thing])
        (profile,) = answer["people"]
        assert (profile["handle"], profile["device"], profile["guest"]) == (thing, True, False)
    finally:
        device.close()
