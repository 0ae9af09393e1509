"""The local Cognito as one object: a user pool, an identity pool trusting it, and their ids.

Ids are generated on the first start and kept in ``<state>/cognito/pools.json``, so a stack
file written after a restart names the same pools and clients keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .attachments import PolicyAttachments
from .identity_pool import (
    CREDENTIAL_LIFETIME,
    CredentialSink,
    IdentityPool,
    LoginProvider,
    new_identity_pool_id,
)
from .store import load_json, save_json
from .tokens import TokenSigner
from .user_pool import UserPool, new_client_id, new_user_pool_id

POOLS_FILE = "pools.json"


@dataclass
class LocalCognito:
    user_pool: UserPool
    identity_pool: IdentityPool
    attachments: PolicyAttachments
    signer: TokenSigner

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        region: str,
        sink: CredentialSink,
        *,
        credential_lifetime: float = CREDENTIAL_LIFETIME,
    ) -> LocalCognito:
        """Load the pools kept under ``directory`` (creating them the first time)."""
        directory.mkdir(parents=True, exist_ok=True)
        ids = load_json(directory / POOLS_FILE, None)
        if ids is None or ids.get("region") != region:
            ids = {
                "region": region,
                "identityPoolId": new_identity_pool_id(region),
                "userPoolId": new_user_pool_id(region),
                "userPoolClientId": new_client_id(),
            }
            save_json(directory / POOLS_FILE, ids)
        signer = TokenSigner.load_or_create(directory)
        attachments = PolicyAttachments(directory)
        user_pool = UserPool(directory, region, ids["userPoolId"], ids["userPoolClientId"], signer)
        provider = LoginProvider(
            user_pool.provider_name, user_pool.issuer, frozenset({user_pool.client_id})
        )
        identity_pool = IdentityPool(
            directory,
            region,
            ids["identityPoolId"],
            signer,
            attachments,
            providers=[provider],
            sink=sink,
            credential_lifetime=credential_lifetime,
        )
        return cls(user_pool, identity_pool, attachments, signer)

    def describe(self) -> dict[str, str]:
        """The stack file's ``cognito`` section."""
        return {
            "identityPoolId": self.identity_pool.pool_id,
            "userPoolId": self.user_pool.pool_id,
            "userPoolClientId": self.user_pool.client_id,
        }
