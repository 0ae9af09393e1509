"""Cognito's read and admin calls over the local pools, for a developer inspecting them with
the AWS CLI: ``ListUserPools``, ``DescribeUserPool``, ``DescribeUserPoolClient``,
``ListUsers``, ``AdminGetUser``, ``AdminConfirmSignUp``, ``AdminDeleteUser``,
``ListIdentityPools``, ``DescribeIdentityPool``, ``ListIdentities``.

Unlike sign-up and sign-in, AWS serves these only to signed callers with the IAM permission
(``cognito-idp:AdminGetUser`` on the user pool, ...: Service Authorization Reference,
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncognitouserpools.html
and .../list_amazoncognitoidentity.html), so they go through the API endpoint's signed door
(:mod:`infra.local.api.signed`), never the unsigned one of :mod:`.api`. A user's record shows
its public attributes only: no password hash, salt or code ever leaves the store.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from infra.local.api.signed import (
    Access,
    Call,
    OperationHandler,
    RequiredAccess,
    ServiceError,
    SignedService,
)
from infra.local.identity import LOCAL_ACCOUNT_ID

from .service import LocalCognito
from .user_pool import CUSTOM_ATTRIBUTES

# User record fields that are attributes (AWS's names), in the order AdminGetUser lists them.
_ATTRIBUTES = ("sub", "email", "email_verified", *CUSTOM_ATTRIBUTES)


def _error(code: str, message: str) -> ServiceError:
    return ServiceError(400, code, message)


def _attributes(user: Mapping[str, Any]) -> list[dict[str, str]]:
    found = []
    for name in _ATTRIBUTES:
        if user.get(name) is not None:
            value = user[name]
            found.append(
                {
                    "Name": name,
                    "Value": str(value).lower() if isinstance(value, bool) else str(value),
                }
            )
    return found


class CognitoAdmin:
    """The admin operations over one user pool and one identity pool."""

    def __init__(self, cognito: LocalCognito, stack: str) -> None:
        self.cognito = cognito
        self.stack = stack

    @property
    def _database(self) -> Any:
        return self.cognito.database

    def _user_pool(self, pool_id: Any) -> None:
        if pool_id != self.cognito.user_pool.pool_id:
            raise _error("ResourceNotFoundException", f"User pool {pool_id} does not exist.")

    def _identity_pool(self, pool_id: Any) -> None:
        if pool_id != self.cognito.identity_pool.pool_id:
            raise _error("ResourceNotFoundException", f"IdentityPool '{pool_id}' not found.")

    def _created(self) -> float:
        return self.cognito.database.path.stat().st_ctime

    # ------------------------------------------------------------------ user pool

    def list_user_pools(self, call: Call) -> dict[str, Any]:
        created = self._created()
        pool = {
            "Id": self.cognito.user_pool.pool_id,
            "Name": f"{self.stack}-users",
            "Status": "Enabled",
            "CreationDate": created,
            "LastModifiedDate": created,
        }
        return {"UserPools": [pool]}

    def describe_user_pool(self, call: Call) -> dict[str, Any]:
        pool = self.cognito.user_pool
        self._user_pool(call.params.get("UserPoolId"))
        created = self._created()
        return {
            "UserPool": {
                "Id": pool.pool_id,
                "Name": f"{self.stack}-users",
                "Arn": f"arn:aws:cognito-idp:{pool.region}:{LOCAL_ACCOUNT_ID}:userpool/"
                + pool.pool_id,
                "Status": "Enabled",
                "CreationDate": created,
                "LastModifiedDate": created,
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 8,
                        "RequireUppercase": True,
                        "RequireLowercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                    }
                },
                "AutoVerifiedAttributes": ["email"],
                "UsernameConfiguration": {"CaseSensitive": False},
                "MfaConfiguration": "OFF",
                "EstimatedNumberOfUsers": pool.user_count(),
            }
        }

    def describe_user_pool_client(self, call: Call) -> dict[str, Any]:
        pool = self.cognito.user_pool
        self._user_pool(call.params.get("UserPoolId"))
        if call.params.get("ClientId") != pool.client_id:
            raise _error("ResourceNotFoundException", "User pool client does not exist.")
        created = self._created()
        return {
            "UserPoolClient": {
                "UserPoolId": pool.pool_id,
                "ClientName": f"{self.stack}-clients",
                "ClientId": pool.client_id,
                "CreationDate": created,
                "LastModifiedDate": created,
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                "PreventUserExistenceErrors": "ENABLED",
            }
        }

    def _user_entry(self, user: Mapping[str, Any], attributes_key: str) -> dict[str, Any]:
        return {
            "Username": user["username"],
            attributes_key: _attributes(user),
            "UserCreateDate": user["created"],
            "UserLastModifiedDate": user["created"],
            "Enabled": True,
            "UserStatus": "CONFIRMED" if user["confirmed"] else "UNCONFIRMED",
        }

    def list_users(self, call: Call) -> dict[str, Any]:
        self._user_pool(call.params.get("UserPoolId"))
        limit = call.params.get("Limit") or 60
        rows = self._database.query("SELECT record FROM users ORDER BY key LIMIT ?", (limit,))
        return {"Users": [self._user_entry(json.loads(r[0]), "Attributes") for r in rows]}

    def _user(self, params: Mapping[str, Any]) -> dict[str, Any]:
        self._user_pool(params.get("UserPoolId"))
        username = params.get("Username")
        user = self.cognito.user_pool.user(username) if isinstance(username, str) else None
        if user is None:
            raise _error("UserNotFoundException", "User does not exist.")
        return user

    def admin_get_user(self, call: Call) -> dict[str, Any]:
        return self._user_entry(self._user(call.params), "UserAttributes")

    def admin_confirm_sign_up(self, call: Call) -> dict[str, Any]:
        user = self._user(call.params)
        if user["confirmed"]:
            raise _error(
                "NotAuthorizedException", "User cannot be confirmed. Current status is CONFIRMED"
            )
        user.update(confirmed=True, code=None, code_expires=None)
        self._database.execute(
            "UPDATE users SET confirmed = 1, record = ? WHERE key = ?",
            (json.dumps(user), str(call.params["Username"]).lower()),
        )
        return {}

    def admin_delete_user(self, call: Call) -> dict[str, Any]:
        user = self._user(call.params)
        key = str(call.params["Username"]).lower()
        self._database.execute("DELETE FROM users WHERE key = ?", (key,))
        self._database.execute(
            "DELETE FROM refresh_tokens WHERE username IN (?, ?)", (key, user["username"])
        )
        return {}

    # ------------------------------------------------------------------ identity pool

    def list_identity_pools(self, call: Call) -> dict[str, Any]:
        pool_id = self.cognito.identity_pool.pool_id
        return {"IdentityPools": [{"IdentityPoolId": pool_id, "IdentityPoolName": self._pool_name}]}

    @property
    def _pool_name(self) -> str:
        return f"{self.stack}_identities"

    def describe_identity_pool(self, call: Call) -> dict[str, Any]:
        self._identity_pool(call.params.get("IdentityPoolId"))
        user_pool = self.cognito.user_pool
        return {
            "IdentityPoolId": self.cognito.identity_pool.pool_id,
            "IdentityPoolName": self._pool_name,
            "AllowUnauthenticatedIdentities": True,
            "AllowClassicFlow": False,
            "CognitoIdentityProviders": [
                {
                    "ProviderName": user_pool.provider_name,
                    "ClientId": user_pool.client_id,
                    "ServerSideTokenCheck": False,
                }
            ],
        }

    def list_identities(self, call: Call) -> dict[str, Any]:
        self._identity_pool(call.params.get("IdentityPoolId"))
        limit = call.params.get("MaxResults") or 60
        rows = self._database.query(
            "SELECT id, created FROM identities ORDER BY created LIMIT ?", (limit,)
        )
        identities = []
        for identity_id, created in rows:
            logins = self._database.query(
                "SELECT login FROM logins WHERE identity_id = ?", (identity_id,)
            )
            identities.append(
                {
                    "IdentityId": identity_id,
                    "Logins": sorted({row[0].split("|")[0] for row in logins}),
                    "CreationDate": created,
                    "LastModifiedDate": created,
                }
            )
        return {"IdentityPoolId": self.cognito.identity_pool.pool_id, "Identities": identities}


def required_access(region: str, account: str, prefix: str, kind: str) -> RequiredAccess:
    """``<prefix>:<Operation>`` on the pool named in the request (``*`` for the list of pools)."""

    def access(operation: str, params: Mapping[str, Any]) -> Iterable[Access]:
        pool = params.get("UserPoolId") or params.get("IdentityPoolId")
        resource = f"arn:aws:{prefix}:{region}:{account}:{kind}/{pool}" if pool else "*"
        return [(f"{prefix}:{operation}", resource)]

    return access


IDP_OPERATIONS = (
    "ListUserPools",
    "DescribeUserPool",
    "DescribeUserPoolClient",
    "ListUsers",
    "AdminGetUser",
    "AdminConfirmSignUp",
    "AdminDeleteUser",
)
IDENTITY_OPERATIONS = ("ListIdentityPools", "DescribeIdentityPool", "ListIdentities")


def _on_workers(admin: CognitoAdmin, operation: str) -> OperationHandler:
    """The operation on the user pool's worker threads (SQLite blocks)."""
    method: Callable[[Call], dict[str, Any]] = getattr(admin, _snake(operation))

    async def handle(call: Call) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(admin.cognito.user_workers, method, call)

    return handle


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def services(admin: CognitoAdmin, region: str) -> tuple[SignedService, SignedService]:
    """The signed user pool and identity pool services, as the edge serves them."""
    idp = SignedService(
        "cognito-idp",
        {name: _on_workers(admin, name) for name in IDP_OPERATIONS},
        required_access(region, LOCAL_ACCOUNT_ID, "cognito-idp", "userpool"),
    )
    identity = SignedService(
        "cognito-identity",
        {name: _on_workers(admin, name) for name in IDENTITY_OPERATIONS},
        required_access(region, LOCAL_ACCOUNT_ID, "cognito-identity", "identitypool"),
    )
    return idp, identity
