"""People and their sessions (docs/protocol.md, "People and sessions").

A person is a Cognito identity (``<region>:<GUID>``) or a device (its thing name). Each of a
person's sessions connects with its own MQTT client id, ``<identity id>_<session part>``, so
two tabs never take each other over. Cognito identity ids have a fixed shape ("REGION:GUID",
https://docs.aws.amazon.com/cognitoidentity/latest/APIReference/API_GetCredentialsForIdentity.html),
which is why the person behind a client id can be read off it, and why one person's client ids
never match another person's ``client/${cognito-identity.amazonaws.com:sub}_*`` in the IoT
policy. The rules compute the same person with ``regexp_replace(clientid(), PERSON_PATTERN,
'$1')``; a test keeps the two in step.
"""

from __future__ import annotations

import re

SEPARATOR = "_"
SESSION_PART = "[A-Za-z0-9_-]{1,64}"  # what clients choose (the gateway caps the id at 128)
# A Cognito identity id: the region, a colon, a lower-case GUID (36 characters).
IDENTITY_ID = (
    "[a-z]{2}(?:-[a-z]+)+-[0-9]:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
)
# A session's client id; group 1 is the person. Valid in Java (AWS IoT SQL) and Python alike.
PERSON_PATTERN = f"^({IDENTITY_ID}){SEPARATOR}[A-Za-z0-9_-]+$"
_SESSION_CLIENT_ID = re.compile(PERSON_PATTERN)
_IDENTITY = re.compile(f"^{IDENTITY_ID}$")

# What the rules engine says for a publish that did not come over MQTT (an iot-data HTTPS
# publish): https://docs.aws.amazon.com/iot/latest/developerguide/iot-sql-functions.html#iot-function-clientid
NOT_MQTT = "n/a"


def person_of(client_id: str) -> str:
    """The person behind a client id: the identity id of a session, else the id itself (a
    device's thing name, or a bare identity id from a client of the one-session contract)."""
    match = _SESSION_CLIENT_ID.match(client_id)
    return match.group(1) if match else client_id


def is_identity_id(value: str) -> bool:
    """Whether ``value`` has the shape of a Cognito identity id."""
    return _IDENTITY.match(value) is not None


def session_client_id(identity_id: str, session_part: str) -> str:
    """The client id a session of ``identity_id`` connects with."""
    client_id = f"{identity_id}{SEPARATOR}{session_part}"
    if not re.fullmatch(SESSION_PART, session_part) or person_of(client_id) != identity_id:
        raise ValueError("not an identity id and a session part of A-Z a-z 0-9 _ - (1-64)")
    return client_id
