"""Who people are to each other: profiles (handle, display name), handles claimed once, and
the commands that set them (``hello``, ``name``, ``whois``; docs/protocol.md, "Names and
handles").

Names come only from here, never from a message: a signed-in person's handle is the Cognito
attribute ``custom:handle`` of the ID token they show in ``hello``, and the token counts only
when Cognito's ``GetId`` with it gives the very identity that sent it
(https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_GetId.html), so nobody can
wear another account's handle. Cognito does not keep custom attributes unique, so the chat
does: a handle is claimed with a conditional write (docs/data-model.md).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from .names import (
    GUEST_PREFIX,
    HANDLE_ATTRIBUTE,
    LEGACY_PREFIX,
    check_handle,
    clean_name,
    generated_handle,
)
from .protocol import CLIENT_ID, VERSION, ProtocolError, inbox, ref_of, room_events_topic
from .publisher import Publisher
from .store import ChatStore, from_item, is_conditional_failure, to_item

log = logging.getLogger("iotchat.people")

MAX_WHOIS = 50
# Handle collisions of generated handles are astronomically rare; a few longer tries suffice.
_GENERATED_ATTEMPTS = 4


def is_identity(person: str) -> bool:
    """A Cognito identity id (``<region>:<GUID>``); anything else is a device's thing name."""
    return ":" in person


class TokenCheck(Protocol):
    """Checks a Cognito ID token: the identity id it signs in, and its claims."""

    def identity_of(self, token: str) -> tuple[str, dict[str, Any]]: ...


class CognitoTokenCheck:
    """``GetId`` with the token as the identity pool's login: Cognito verifies the token
    (signature, issuer, audience, expiry) and names the identity it belongs to. GetId is a
    public API that needs no IAM permission
    (https://boto3.amazonaws.com/v1/documentation/api/latest/reference/services/cognito-identity/client/get_id.html);
    a login not yet linked makes a new, empty identity, which never equals the sender."""

    def __init__(self, cognito_identity: Any, identity_pool_id: str, provider: str) -> None:
        self.client = cognito_identity
        self.pool_id = identity_pool_id
        self.provider = provider

    def identity_of(self, token: str) -> tuple[str, dict[str, Any]]:
        try:
            response = self.client.get_id(
                IdentityPoolId=self.pool_id, Logins={self.provider: token}
            )
        except Exception as exc:
            code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code")
            if code in ("NotAuthorizedException", "InvalidParameterException"):
                raise ProtocolError(
                    "NOT_AUTHORIZED", "the sign-in token was not accepted"
                ) from None
            raise
        return response["IdentityId"], token_claims(token)


def token_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT whose signature someone else (Cognito) has already checked."""
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, binascii.Error, ValueError, UnicodeDecodeError):
        raise ProtocolError("NOT_AUTHORIZED", "the sign-in token was not accepted") from None
    if not isinstance(claims, dict):
        raise ProtocolError("NOT_AUTHORIZED", "the sign-in token was not accepted")
    return claims


def public(profile: dict[str, Any]) -> dict[str, Any]:
    """A profile as others see it."""
    return {
        "person": profile["person"],
        "handle": profile["handle"],
        "name": profile["name"],
        "guest": bool(profile.get("guest")),
        "device": bool(profile.get("device")),
    }


def default_profile(person: str) -> dict[str, Any]:
    """How someone who never said ``hello`` shows: a device by its thing name, anyone else
    as a guest (nothing they claimed is used)."""
    if not is_identity(person):
        return {"person": person, "handle": person, "name": person, "device": True}
    handle = generated_handle(GUEST_PREFIX, person)
    return {"person": person, "handle": handle, "name": handle, "guest": True}


class Directory:
    """Profiles and handle claims in the state table (docs/data-model.md)."""

    def __init__(self, store: ChatStore) -> None:
        self.db = store.db
        self.table = store.state_table

    def get(self, person: str) -> dict[str, Any] | None:
        item = self.db.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"person#{person}", "sk": "profile"}),
            ConsistentRead=True,
        ).get("Item")
        return from_item(item) if item else None

    def profile(self, person: str) -> dict[str, Any]:
        return public(self.get(person) or default_profile(person))

    def profiles(self, people: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Public profiles of ``people`` (defaults for those without one), in one or a few
        BatchGetItem calls of at most 100 keys."""
        wanted = list(dict.fromkeys(people))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), 100):
            keys = [
                to_item({"pk": f"person#{p}", "sk": "profile"}) for p in wanted[start : start + 100]
            ]
            request: dict[str, Any] = {self.table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                response = self.db.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self.table, []):
                    profile = from_item(item)
                    found[profile["person"]] = profile
                request = response.get("UnprocessedKeys") or {}
        return {p: public(found.get(p) or default_profile(p)) for p in wanted}

    def owner_of(self, handle: str) -> str | None:
        item = self.db.get_item(
            TableName=self.table,
            Key=to_item({"pk": f"handle#{handle}", "sk": "owner"}),
            ConsistentRead=True,
        ).get("Item")
        return str(from_item(item)["person"]) if item else None

    def claim(self, handle: str, person: str) -> bool:
        """Take ``handle`` for ``person`` unless someone else holds it."""
        try:
            self.db.put_item(
                TableName=self.table,
                Item=to_item({"pk": f"handle#{handle}", "sk": "owner", "person": person}),
                ConditionExpression="attribute_not_exists(pk) OR person = :p",
                ExpressionAttributeValues=to_item({":p": person}),
            )
        except Exception as exc:
            if is_conditional_failure(exc):
                return False
            raise
        return True

    def release(self, handle: str, person: str) -> None:
        try:
            self.db.delete_item(
                TableName=self.table,
                Key=to_item({"pk": f"handle#{handle}", "sk": "owner"}),
                ConditionExpression="person = :p",
                ExpressionAttributeValues=to_item({":p": person}),
            )
        except Exception as exc:
            if not is_conditional_failure(exc):
                raise

    def save(self, profile: dict[str, Any], now: int) -> None:
        self.db.put_item(
            TableName=self.table,
            Item=to_item(
                {**profile, "pk": f"person#{profile['person']}", "sk": "profile", "at": now}
            ),
        )

    def resolve(self, value: object, ref: str | None, field: str) -> str:
        """A person id from a handle (or from a person id, which has a ``:``), or NOT_FOUND."""
        if not isinstance(value, str) or not CLIENT_ID.match(value):
            raise ProtocolError(
                "INVALID_REQUEST", f"{field} must be a handle (A-Z a-z 0-9 _ -)", ref
            )
        if is_identity(value):
            return value
        owner = self.owner_of(value.lower()) or self.owner_of(value)
        if owner is None:
            raise ProtocolError("NOT_FOUND", f"nobody has the handle {value[:40]!r}", ref)
        return owner


class People:
    """The ``hello``, ``name`` and ``whois`` commands."""

    def __init__(
        self,
        store: ChatStore,
        publisher: Publisher,
        tokens: TokenCheck | None = None,
    ) -> None:
        self.store = store
        self.directory = Directory(store)
        self.publisher = publisher
        self.tokens = tokens

    def hello(
        self,
        request: dict[str, Any],
        sender: str,
        ts: int,
        reply: str,
        also: dict[str, Any] | None = None,
    ) -> None:
        """Make or read the person's profile and answer with it; ``also`` adds fields to that
        answer only (the rooms and groups the person belongs to), never to announcements."""
        ref = ref_of(request)
        name = clean_name(request["name"], ref) if "name" in request else None
        stored = self.directory.get(sender)
        if "token" in request:
            profile = self._signed_in(request["token"], sender, stored, ref)
        elif stored is not None:
            profile = stored
        elif is_identity(sender):
            profile = {**self._generated(GUEST_PREFIX, sender), "guest": True}
        else:
            profile = {"person": sender, "handle": sender, "name": sender, "device": True}
            self.directory.claim(sender, sender)  # best effort: a thing name is its handle
        profile = {k: v for k, v in profile.items() if k not in ("pk", "sk", "at")}
        if name is not None:
            profile["name"] = name
        changed = stored is None or profile != {
            k: v for k, v in stored.items() if k not in ("pk", "sk", "at")
        }
        if changed:
            self.directory.save(profile, ts)
        answer = {"v": VERSION, "type": "profile", **public(profile), **(also or {})}
        self.publisher.publish(reply, answer)
        if changed and stored is not None:
            self._announce(sender, profile, ts)

    def _generated(self, prefix: str, seed: str) -> dict[str, Any]:
        person = seed
        for attempt in range(_GENERATED_ATTEMPTS):
            handle = generated_handle(prefix, seed, attempt)
            if self.directory.claim(handle, person):
                return {"person": person, "handle": handle, "name": handle}
        raise RuntimeError("no free generated handle")  # 2**-32 per attempt: retried

    def _signed_in(
        self, token: object, sender: str, stored: dict[str, Any] | None, ref: str | None
    ) -> dict[str, Any]:
        if self.tokens is None or not is_identity(sender):
            raise ProtocolError("NOT_AUTHORIZED", "sign-in tokens are not accepted here", ref)
        if not isinstance(token, str) or len(token) > 8192:
            raise ProtocolError("NOT_AUTHORIZED", "the sign-in token was not accepted", ref)
        identity, claims = self.tokens.identity_of(token)
        if identity != sender:
            raise ProtocolError("NOT_AUTHORIZED", "that token belongs to another identity", ref)
        chosen = claims.get(HANDLE_ATTRIBUTE)
        if chosen is None:
            # An account made before handles: a stable generated one.
            if stored is not None and not stored.get("guest"):
                return stored
            generated = self._generated(LEGACY_PREFIX, str(claims.get("sub", sender)))
            return {**generated, "person": sender}
        handle = check_handle(chosen, ref)
        if stored is not None and stored.get("handle") == handle and not stored.get("guest"):
            return stored
        if not self.directory.claim(handle, sender):
            raise ProtocolError("HANDLE_TAKEN", f"the handle {handle} belongs to someone else", ref)
        if stored is not None and stored.get("handle") != handle:
            self.directory.release(stored["handle"], sender)
        name = stored["name"] if stored is not None and not stored.get("guest") else handle
        return {"person": sender, "handle": handle, "name": name}

    def name(self, request: dict[str, Any], sender: str, ts: int, reply: str) -> None:
        name = clean_name(request.get("name"), ref_of(request))
        stored = self.directory.get(sender)
        profile = dict(stored) if stored is not None else default_profile(sender)
        if stored is None and profile.get("guest"):
            profile = {**self._generated(GUEST_PREFIX, sender), "guest": True}
        profile["name"] = name
        profile.pop("at", None)
        profile.pop("pk", None)
        profile.pop("sk", None)
        self.directory.save(profile, ts)
        self.publisher.publish(reply, {"v": VERSION, "type": "profile", **public(profile)})
        self._announce(sender, profile, ts)

    def _announce(self, person: str, profile: dict[str, Any], ts: int) -> None:
        """The new name, to the person's other sessions and to every room they are in."""
        body = {"v": VERSION, "type": "profile", **public(profile), "ts": ts}
        self.publisher.publish(inbox(person), body)
        for room in self.store.rooms_of(person):
            self.publisher.publish(room_events_topic(room), {**body, "room": room})

    def whois(self, request: dict[str, Any], sender: str, ts: int, reply: str) -> None:
        ref = ref_of(request)
        wanted = request.get("people")
        if (
            not isinstance(wanted, list)
            or not 1 <= len(wanted) <= MAX_WHOIS
            or not all(isinstance(p, str) and 1 <= len(p) <= 128 for p in wanted)
        ):
            raise ProtocolError(
                "INVALID_REQUEST", f"people must be a list of 1-{MAX_WHOIS} ids or handles", ref
            )
        people: list[str] = []
        for value in wanted:
            try:
                people.append(self.directory.resolve(value, ref, "people"))
            except ProtocolError as problem:
                if problem.code != "NOT_FOUND":
                    raise
        found = self.directory.profiles(people)
        self.publisher.publish(
            reply, {"v": VERSION, "type": "people", "people": list(found.values())}
        )
