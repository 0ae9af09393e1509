"""The local Cognito as one object: a user pool, an identity pool trusting it, and their ids.

Ids are generated on the first start and kept in ``<state>/cognito/pools.json``, so a stack
file written after a restart names the same pools and clients keep working. Users,
identities, credentials and attachments are rows of ``<state>/cognito/cognito.sqlite3``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .attachments import PolicyAttachments
from .identity_pool import (
    CREDENTIAL_LIFETIME,
    CredentialSink,
    IdentityPool,
    LoginProvider,
    new_identity_pool_id,
)
from .limits import CognitoLimits
from .store import Database, load_json, save_json
from .tokens import TokenSigner
from .user_pool import UserPool, new_client_id, new_user_pool_id

POOLS_FILE = "pools.json"
# Worker threads: the identity pool's (store calls) apart from the user pool's (scrypt, ~50 ms
# of CPU each), so a flood of sign-ins never delays a guest's GetId.
IDENTITY_WORKERS = 4
USER_WORKERS = max(2, min(4, os.cpu_count() or 2))


@dataclass
class LocalCognito:
    user_pool: UserPool
    identity_pool: IdentityPool
    attachments: PolicyAttachments
    signer: TokenSigner
    database: Database
    limits: CognitoLimits = field(default_factory=CognitoLimits)

    def __post_init__(self) -> None:
        self.identity_workers = ThreadPoolExecutor(IDENTITY_WORKERS, "cognito-identity")
        self.user_workers = ThreadPoolExecutor(USER_WORKERS, "cognito-idp")

    @classmethod
    def load_or_create(
        cls,
        directory: Path,
        region: str,
        sink: CredentialSink,
        *,
        credential_lifetime: float = CREDENTIAL_LIFETIME,
        limits: CognitoLimits | None = None,
    ) -> LocalCognito:
        """Load the pools kept under ``directory`` (creating them the first time)."""
        limits = limits or CognitoLimits()
        directory.mkdir(parents=True, exist_ok=True)
        # Owner only, also what an earlier version (or a wider umask) left readable.
        os.chmod(directory, 0o700)
        for path in directory.iterdir():
            if path.is_file():
                path.chmod(0o600)
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
        database = Database.open(directory)
        attachments = PolicyAttachments(database)
        user_pool = UserPool(
            database, region, ids["userPoolId"], ids["userPoolClientId"], signer, limits=limits
        )
        provider = LoginProvider(
            user_pool.provider_name, user_pool.issuer, frozenset({user_pool.client_id})
        )
        identity_pool = IdentityPool(
            database,
            region,
            ids["identityPoolId"],
            signer,
            attachments,
            providers=[provider],
            sink=sink,
            credential_lifetime=credential_lifetime,
        )
        return cls(user_pool, identity_pool, attachments, signer, database, limits)

    def describe(self) -> dict[str, str]:
        """The stack file's ``cognito`` section."""
        return {
            "identityPoolId": self.identity_pool.pool_id,
            "userPoolId": self.user_pool.pool_id,
            "userPoolClientId": self.user_pool.client_id,
        }

    def close(self) -> None:
        """Stop the worker threads (after the calls they run) and close the database."""
        self.identity_workers.shutdown(wait=True, cancel_futures=True)
        self.user_workers.shutdown(wait=True, cancel_futures=True)
        self.database.close()
