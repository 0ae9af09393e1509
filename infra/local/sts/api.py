"""STS on the API endpoint: who am I, for the admin, Cognito identities, role sessions.

``GetCallerIdentity`` needs no permission: "No permissions are required to perform this
operation", even an explicit deny does not stop it
(https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html). The ARN is
the one IAM names the caller by in its refusals (:func:`infra.local.iam.authorizer.caller_arn`);
``UserId`` is, as on AWS, the account for the root user and ``<role id>:<session>`` for an
assumed role, the role id being a stable ``AROA...`` derived from the role name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from infra.local.api.signed import Access, Call, SignedService
from infra.local.iam.authorizer import caller_arn
from infra.local.iam.roles import Roles


def role_id(role_name: str) -> str:
    """A stable unique id for a role, shaped like AWS's (``AROA`` + 17 characters)."""
    digest = hashlib.sha256(role_name.encode()).hexdigest().upper()
    return "AROA" + digest[:17]


def user_id(arn: str, account: str) -> str:
    """``UserId`` for the caller whose ARN is ``arn``."""
    if arn.endswith(":root"):
        return account
    if ":assumed-role/" in arn:
        role, _, session = arn.split(":assumed-role/", 1)[1].partition("/")
        return f"{role_id(role)}:{session}"
    return "AIDA" + hashlib.sha256(arn.encode()).hexdigest().upper()[:17]


def _no_access(operation: str, params: Mapping[str, Any]) -> Iterable[Access]:
    return ()


def service(roles: Roles) -> SignedService:
    """STS as the edge serves it."""

    def get_caller_identity(call: Call) -> dict[str, str]:
        arn = caller_arn(call.principal, roles)
        return {"UserId": user_id(arn, roles.account), "Account": roles.account, "Arn": arn}

    return SignedService("sts", {"GetCallerIdentity": get_caller_identity}, _no_access)
