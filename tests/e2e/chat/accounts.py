"""Signed-in people with a chosen handle, for the names, groups and edits scenarios: a user
signs up with ``custom:handle``, signs in, and connects with their identity's credentials; the
ID token is kept for ``hello`` (docs/protocol.md, "Names and handles")."""

from __future__ import annotations

import uuid
from typing import Any

from tests.e2e.chat.conftest import ChatClient, People
from tests.support.cognito import logins, new_user, unsigned_client
from tests.support.stack import InProcessStack


def fresh_handle(prefix: str) -> str:
    """A handle no other test on the shared stack uses (3-32 of a-z 0-9 _ -)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def account(stack: InProcessStack, handle: str) -> tuple[str, dict[str, Any], str]:
    """A new user with ``handle``: their identity id, its credentials and their ID token."""
    user = new_user(stack, handle=handle)
    login = logins(stack, user.id_token)
    identity = unsigned_client(stack, "cognito-identity")
    pool = stack.info["cognito"]["identityPoolId"]
    identity_id = identity.get_id(IdentityPoolId=pool, Logins=login)["IdentityId"]
    creds = identity.get_credentials_for_identity(IdentityId=identity_id, Logins=login)
    return identity_id, creds["Credentials"], user.id_token


def hello(client: ChatClient, **fields: Any) -> dict[str, Any]:
    """Say hello; the ``profile`` answer (or the error, whichever comes first)."""
    topic = f"chat/in/{client.client_id}"
    before = len(client.on(topic))
    client.send("hello", **fields)
    return client.wait_for_message(
        topic,
        lambda m: m.get("type") in ("profile", "error") and "room" not in m,
        "the answer to hello",
        after=before,
    )


def signed_in(people: People, prefix: str) -> tuple[ChatClient, dict[str, Any]]:
    """A connected signed-in person who has said hello with their token: the client and its
    profile."""
    identity_id, creds, token = account(people.stack, fresh_handle(prefix))
    client = people.connect(identity=(identity_id, creds))
    profile = hello(client, token=token)
    assert profile["type"] == "profile", profile
    return client, profile
