"""A function's execution-role credentials, which its workers and event source mappings use.

On AWS, Lambda assumes the function's execution role for every execution environment and puts
the temporary credentials in the environment variables ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY`` and ``AWS_SESSION_TOKEN``
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime,
https://docs.aws.amazon.com/lambda/latest/dg/lambda-intro-execution-role.html). The variables
never change while the environment lives, and concurrent environments hold distinct sessions.
An event source mapping reads its stream with the same execution role
(https://docs.aws.amazon.com/lambda/latest/dg/with-kinesis.html, "Execution role permissions").

The runtime does not know where credentials come from: it takes a :data:`CredentialsProvider`
(the stack's issues a role session of ``policies/iam/backend-lambda.json``, named after the
function). Each worker spawn asks for fresh credentials; a worker whose credentials would
expire before an invocation could finish is retired and replaced (:func:`usable_until`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

from infra.local.iam.sessions import DEFAULT_RENEWAL, Renewal
from lambdas.manifest import FunctionSpec

# How long the stack's Lambda sessions live (AssumeRole's longest for a role's sessions). AWS
# keeps an execution environment's credentials for the environment's whole life, some hours.
DEFAULT_LIFETIME = 12 * 3600.0
# A worker (or a mapping's client) is renewed DEFAULT_RENEW_MARGIN (iam.sessions: the same for
# every holder of a role session) before its credentials expire, on top of the function's
# timeout for a worker, so no call is ever signed with an expired key.

KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


class RoleCredentials(Protocol):
    """Temporary credentials as an STS session hands them out (``identity.Credential`` fits)."""

    @property
    def access_key_id(self) -> str: ...

    @property
    def secret_access_key(self) -> str: ...

    @property
    def session_token(self) -> str | None: ...

    @property
    def expires_at(self) -> float | None: ...  # epoch seconds; None: never expires


# Fresh credentials for a function's execution role, one new session per call.
CredentialsProvider = Callable[[FunctionSpec], RoleCredentials]


def environment(credentials: RoleCredentials) -> dict[str, str]:
    """The three variables Lambda sets from the execution role's session."""
    variables = {
        "AWS_ACCESS_KEY_ID": credentials.access_key_id,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_access_key,
    }
    if credentials.session_token is not None:
        variables["AWS_SESSION_TOKEN"] = credentials.session_token
    return variables


class RenewingClient:
    """A boto3 client signed with a role session, rebuilt with a new session before expiry.

    ``issue`` returns new credentials (or None: no session, the client is built once);
    ``build(credentials)`` a client signed with them. :meth:`get` does both when due; a caller
    that must issue on one thread (the stack's key store belongs to its event loop) and build
    on another (boto3 is slow to build a client) uses :meth:`due`, :attr:`issue` and
    :meth:`renew` instead, as the event source mappings do.
    """

    def __init__(
        self,
        issue: Callable[[], RoleCredentials | None],
        build: Callable[[RoleCredentials | None], Any],
        *,
        renewal: Renewal = DEFAULT_RENEWAL,
    ) -> None:
        self.issue = issue
        self._build = build
        self.renewal = renewal
        self._lock = threading.Lock()
        self.client: Any = None
        self._until = float("-inf")
        self.credentials: RoleCredentials | None = None
        self.renewals = 0  # sessions issued so far (the first one included)

    def due(self) -> bool:
        """No client yet, or its session is within ``margin`` of expiry."""
        return self.client is None or self.renewal.clock() >= self._until

    def renew(self, credentials: RoleCredentials | None) -> Any:
        """Build the client anew, signed with ``credentials`` (thread-safe); return it."""
        client = self._build(credentials)
        until = float("inf") if credentials is None else self.renewal.until(credentials)
        with self._lock:
            self.client, self._until, self.credentials = client, until, credentials
            self.renewals += 1
        return client

    def get(self) -> Any:
        """The client, renewed first if its credentials are within ``margin`` of expiry."""
        return self.renew(self.issue()) if self.due() else self.client
