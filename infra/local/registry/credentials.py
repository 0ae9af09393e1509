"""The gateway's credential store on a running stack: access keys, and certificates by registry.

A certificate signed by the local CA is not enough to connect, as on AWS IoT: it must be
registered and ACTIVE. This store answers the gateway's lookups from the registry, and fails
closed when the registry cannot be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from infra.local.identity import Credential, Principal, StaticCredentialStore

from .service import CERT_ID, Registry

log = logging.getLogger(__name__)


@dataclass
class RegistryCredentialStore:
    """The gateway's credential store: access keys from ``static``, certificates only from
    the registry, so an unregistered or non-ACTIVE certificate has no principal."""

    static: StaticCredentialStore
    registry: Registry

    def add(self, credential: Credential) -> None:
        self.static.add(credential)

    def lookup_access_key(self, access_key_id: str) -> Credential | None:
        return self.static.lookup_access_key(access_key_id)

    def lookup_certificate(self, certificate_id: str) -> Principal | None:
        if not CERT_ID.fullmatch(certificate_id):
            return None
        try:
            return self.registry.certificate_principal(certificate_id)
        except (OSError, ValueError):  # an unreadable registry fails closed, loudly
            log.exception("device registry unreadable; refusing certificate %s", certificate_id)
            return None
