"""May this principal perform this action on this resource? IAM's answer, for every API door.

A request is allowed when the principal's identity-based policies allow it and none denies it
explicitly (``policies.evaluator``, the same evaluator the MQTT door uses):

- the local admin (``test``/``test``): everything, as LocalStack's default keys;
- a Cognito identity: its identity pool role, ``<stack>-guest-role`` or ``<stack>-user-role``;
- a role session (a Lambda's execution role, a rule's ``roleArn``): that role's policy;
- anything else (a device certificate, an unknown role): nothing outside AWS IoT.

Refusals carry the message AWS gives (IAM User Guide, "Troubleshooting access denied error
messages", https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html):
``User: <caller ARN> is not authorized to perform: <action> on resource: <ARN> because no
identity-based policy allows the <action> action`` (or ``with an explicit deny in an
identity-based policy``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.local.identity import Principal
from policies.evaluator import CachedEvaluator, Decision
from policies.model import Policy

from .roles import Roles
from .sessions import SESSION_ATTRIBUTE

SUB = "cognito-identity.amazonaws.com:sub"
AMR = "cognito-identity.amazonaws.com:amr"
COGNITO_SESSION = "CognitoIdentityCredentials"  # the session name Cognito's roles carry


class AccessDenied(Exception):
    """A refused request; ``str()`` is AWS's AccessDeniedException message."""

    def __init__(self, caller: str, action: str, resource: str, explicit: bool) -> None:
        self.caller = caller
        self.action = action
        self.resource = resource
        self.explicit = explicit
        reason = (
            "with an explicit deny in an identity-based policy"
            if explicit
            else f"because no identity-based policy allows the {action} action"
        )
        super().__init__(
            f"User: {caller} is not authorized to perform: {action} on resource: {resource} "
            + reason
        )


def _cognito_role_file(principal: Principal) -> str:
    return "user-role" if principal.attribute(AMR) == "authenticated" else "guest-role"


def caller_arn(principal: Principal, roles: Roles) -> str:
    """The ARN AWS names the caller by (``sts get-caller-identity``, error messages)."""
    account = roles.account
    if principal.kind == "admin":
        return f"arn:aws:iam::{account}:root"
    if principal.kind == "cognito":
        role = roles.by_file(_cognito_role_file(principal))
        return f"arn:aws:sts::{account}:assumed-role/{role.name}/{COGNITO_SESSION}"
    if principal.kind == "role":
        name = principal.identifier.rpartition("/")[2]
        session = principal.attribute(SESSION_ATTRIBUTE) or "session"
        return f"arn:aws:sts::{account}:assumed-role/{name}/{session}"
    if principal.kind == "certificate":
        return f"arn:aws:iot:{roles.region}:{account}:cert/{principal.identifier}"
    return f"arn:aws:iam::{account}:user/{principal.identifier}"


class IamAuthorizer:
    """Cached IAM decisions for the stack's principals; :meth:`invalidate` on policy changes."""

    def __init__(self, roles: Roles, max_principals: int = 65536) -> None:
        self.roles = roles
        self._principals: dict[str, Principal] = {}
        # Per principal: its cache key and the policy-variable values its identity gives, so a
        # cached decision costs two dictionary lookups (bounded; forgotten all at once).
        self._prepared: dict[Principal, tuple[str, Mapping[str, str]]] = {}
        self._max_principals = max_principals
        self.evaluator = CachedEvaluator(self._policy_sets)

    def invalidate(self) -> None:
        self.evaluator.invalidate()

    def _prepare(self, principal: Principal) -> tuple[str, Mapping[str, str]]:
        prepared = self._prepared.get(principal)
        if prepared is None:
            key = f"{principal.kind}:{principal.identifier}:{_cognito_role_file(principal)}"
            self._principals.setdefault(key, principal)
            sub = principal.attribute(SUB)
            prepared = (key, {SUB: sub} if sub is not None else {})
            if len(self._prepared) >= self._max_principals:
                self._prepared.clear()
            self._prepared[principal] = prepared
        return prepared

    def _policy_sets(self, key: str) -> Sequence[Sequence[Policy]]:
        principal = self._principals[key]
        if principal.kind == "cognito":
            return [[self.roles.by_file(_cognito_role_file(principal)).policy]]
        if principal.kind == "role":
            role = self.roles.by_arn(principal.identifier)
            return [[role.policy]] if role is not None else [[]]
        return [[]]  # no identity-based policy: implicit deny

    def decide(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
    ) -> Decision:
        if principal.is_admin:
            return Decision.ALLOW
        key, identity_context = self._prepare(principal)
        if context:
            identity_context = {**identity_context, **context}
        return self.evaluator.decide(key, action, resource, identity_context)

    def check(
        self,
        principal: Principal,
        action: str,
        resource: str,
        context: Mapping[str, str] | None = None,
    ) -> None:
        """Return if allowed; raise :class:`AccessDenied` with AWS's message if not."""
        decision = self.decide(principal, action, resource, context)
        if not decision.allowed:
            raise AccessDenied(
                caller_arn(principal, self.roles),
                action,
                resource,
                explicit=decision is Decision.DENY_EXPLICIT,
            )
