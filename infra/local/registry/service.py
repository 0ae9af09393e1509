"""The local AWS IoT registry's store: device certificates, things and what is attached to what.

AWS IoT refuses a device certificate that is not registered and ACTIVE, even when a trusted
CA signed it, and it resolves ``${iot:Connection.Thing.ThingName}`` only when the client id
names a thing attached to the certificate. The local CA alone cannot decide either, so the
stack keeps this registry under its state dir: one JSON document, written atomically and
under a file lock, because ``iotchat device create`` runs in another process than the
running gateway. Readers on the connect path call :meth:`Registry.refresh` (one ``stat``)
and pick up such changes; ``version`` and ``on_change`` let the policy engine drop cached
decisions and the gateway disconnect certificates that stopped being ACTIVE, as AWS does.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from infra.local.ca import certificate_id
from infra.local.identity import LOCAL_ACCOUNT_ID, LOCAL_REGION, Principal
from infra.local.state_files import directory_lock, write_atomic

from .errors import (
    CertificateState,
    DeleteConflict,
    InvalidRequest,
    LimitExceeded,
    ResourceAlreadyExists,
    ResourceNotFound,
)

log = logging.getLogger(__name__)

REGISTRY_DIR = "registry"
REGISTRY_FILE = "registry.json"
FORMAT_VERSION = 1

ACTIVE, INACTIVE, REVOKED = "ACTIVE", "INACTIVE", "REVOKED"
STATUSES = frozenset({ACTIVE, INACTIVE, REVOKED})
DEVICE_POLICY = "iotchat-device"

# Policy variables (AWS names) this registry provides values for.
CERTIFICATE_ID_VARIABLE = "iot:CertificateId"
THING_NAME_VARIABLE = "iot:Connection.Thing.ThingName"
THING_ATTACHED_VARIABLE = "iot:Connection.Thing.IsAttached"
THING_ATTRIBUTE_VARIABLE = "iot:Connection.Thing.Attributes[{}]"

THING_NAME = re.compile(r"[a-zA-Z0-9:_-]{1,128}")
ATTRIBUTE_NAME = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{1,128}")
ATTRIBUTE_VALUE = re.compile(r"[a-zA-Z0-9_.,@/:#=\[\]-]{0,800}")
POLICY_NAME = re.compile(r"[\w+=,.@-]{1,128}")
COGNITO_IDENTITY_ID = re.compile(r"[\w-]+:[0-9a-f-]+")
CERT_ID = re.compile(r"[0-9a-f]{64}")
MAX_ATTRIBUTES = 3  # AWS's limit for a thing without a thing type (types are not modelled)
MAX_POLICIES_PER_TARGET = 10  # AWS: policies attached to one certificate or identity
# What ResourceNotFound says for a missing certificate or thing, by the table it is kept in.
_MISSING = {"certificates": "certificate {} is not registered", "things": "thing {} does not exist"}

_NAME_PARTS = {
    NameOID.COUNTRY_NAME: "Country",
    NameOID.ORGANIZATION_NAME: "Organization",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OrganizationalUnit",
    NameOID.STATE_OR_PROVINCE_NAME: "State",
    NameOID.COMMON_NAME: "CommonName",
    NameOID.SERIAL_NUMBER: "SerialNumber",
    NameOID.TITLE: "Title",
    NameOID.SURNAME: "Surname",
    NameOID.GIVEN_NAME: "GivenName",
    NameOID.INITIALS: "Initials",
    NameOID.PSEUDONYM: "Pseudonym",
    NameOID.GENERATION_QUALIFIER: "GenerationQualifier",
    NameOID.DN_QUALIFIER: "DistinguishedNameQualifier",
}


@dataclass(frozen=True, slots=True)
class CertificateRecord:
    certificate_id: str
    certificate_arn: str
    status: str
    certificate_pem: str
    creation_date: str


@dataclass(frozen=True, slots=True)
class ThingRecord:
    thing_name: str
    thing_arn: str
    attributes: dict[str, str]


@dataclass(frozen=True, slots=True)
class RegistryChange:
    """What a change did: the new ``version`` and the certificates that left ACTIVE
    (whose live connections AWS closes within minutes)."""

    version: int
    deactivated: tuple[str, ...] = ()


def _empty() -> dict[str, Any]:
    return {
        "format": FORMAT_VERSION,
        "version": 0,
        "certificates": {},
        "things": {},
        "thingPrincipals": [],
        "policyAttachments": [],
    }


def _name_attributes(prefix: str, name: x509.Name) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for oid, part in _NAME_PARTS.items():
        values = name.get_attributes_for_oid(oid)
        if values:
            found.append((f"iot:Certificate.{prefix}.{part}", str(values[0].value)))
    return found


@dataclass
class Registry:
    """Certificates, things, thing-principal and policy attachments of one local account."""

    directory: Path
    region: str = LOCAL_REGION
    account_id: str = LOCAL_ACCOUNT_ID
    on_change: list[Callable[[RegistryChange], None]] = field(default_factory=list)
    _data: dict[str, Any] = field(default_factory=_empty, repr=False)
    _stamp: tuple[int, int, int] | None = field(default=None, repr=False)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _depth: int = field(default=0, repr=False)
    _principals: dict[str, Principal | None] = field(default_factory=dict, repr=False)

    @classmethod
    def open(
        cls,
        state_dir: Path,
        *,
        region: str = LOCAL_REGION,
        account_id: str = LOCAL_ACCOUNT_ID,
    ) -> Registry:
        """Open (creating on first use) the registry in ``state_dir/registry``."""
        directory = Path(state_dir) / REGISTRY_DIR
        directory.mkdir(parents=True, exist_ok=True)
        registry = cls(directory, region, account_id)
        registry.refresh()
        return registry

    # ------------------------------------------------------------------ persistence

    @property
    def path(self) -> Path:
        return self.directory / REGISTRY_FILE

    @property
    def version(self) -> int:
        """Bumps on every change, here or in another process once seen by :meth:`refresh`."""
        return int(self._data["version"])

    def _current_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self) -> bool:
        """Reload if another process changed the file; True when something was reloaded."""
        with self._lock:
            if self._depth:
                return False
            stamp = self._current_stamp()
            if stamp == self._stamp:
                return False
            before = self._active_ids()
            self._data = self._read() if stamp is not None else _empty()
            self._stamp = stamp
            self._principals.clear()
            change = RegistryChange(self.version, tuple(sorted(before - self._active_ids())))
        self._notify(change)
        return True

    def _read(self) -> dict[str, Any]:
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"{self.path.name}: unsupported format {data.get('format')!r}")
        return data

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Group changes into one write and one version bump; all or nothing on error."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with directory_lock(self.directory):
                self.refresh()
                snapshot = copy.deepcopy(self._data)
                before = self._active_ids()
                self._depth = 1
                try:
                    yield
                except BaseException:
                    self._data = snapshot
                    raise
                finally:
                    self._depth = 0
                if self._data == snapshot:
                    return
                self._data["version"] = snapshot["version"] + 1
                write_atomic(self.path, json.dumps(self._data, indent=1).encode())
                self._stamp = self._current_stamp()
                self._principals.clear()
                change = RegistryChange(self.version, tuple(sorted(before - self._active_ids())))
        self._notify(change)

    def _notify(self, change: RegistryChange) -> None:
        for callback in list(self.on_change):
            try:
                callback(change)
            except Exception:  # one faulty listener must not break the registry
                log.exception("registry change listener failed")

    def _active_ids(self) -> set[str]:
        return {cid for cid, c in self._data["certificates"].items() if c["status"] == ACTIVE}

    # ------------------------------------------------------------------ certificates

    def certificate_arn(self, cert_id: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:cert/{cert_id}"

    def register_certificate(self, certificate_pem: str, status: str = ACTIVE) -> CertificateRecord:
        """Register a PEM certificate (AWS ``RegisterCertificateWithoutCA``)."""
        _check_status(status)
        try:
            cert = x509.load_pem_x509_certificate(certificate_pem.encode())
        except ValueError as exc:
            raise InvalidRequest("the certificate is not a valid PEM X.509 certificate") from exc
        cert_id = certificate_id(cert.public_bytes(serialization.Encoding.DER))
        with self.batch():
            if cert_id in self._data["certificates"]:
                raise ResourceAlreadyExists(f"certificate {cert_id} is already registered")
            self._data["certificates"][cert_id] = {
                "certificateId": cert_id,
                "certificateArn": self.certificate_arn(cert_id),
                "status": status,
                "certificatePem": cert.public_bytes(serialization.Encoding.PEM).decode(),
                "creationDate": datetime.datetime.now(datetime.UTC).isoformat(),
            }
        return self.describe_certificate(cert_id)

    def _stored(self, table: str, key: str) -> dict[str, Any]:
        """The stored certificate or thing; ResourceNotFound (AWS's message) when absent."""
        raw = self._data[table].get(key)
        if raw is None:
            raise ResourceNotFound(_MISSING[table].format(key))
        return raw

    def describe_certificate(self, cert_id: str) -> CertificateRecord:
        self.refresh()
        raw = self._stored("certificates", cert_id)
        return CertificateRecord(
            raw["certificateId"],
            raw["certificateArn"],
            raw["status"],
            raw["certificatePem"],
            raw["creationDate"],
        )

    def list_certificates(self) -> list[CertificateRecord]:
        self.refresh()
        return [self.describe_certificate(cid) for cid in sorted(self._data["certificates"])]

    def update_certificate(self, certificate_id: str, status: str) -> None:
        """Change a status; as on AWS a REVOKED certificate can never change again."""
        _check_status(status)
        with self.batch():
            raw = self._stored("certificates", certificate_id)
            if raw["status"] == REVOKED and status != REVOKED:
                raise CertificateState("a revoked certificate cannot change status")
            raw["status"] = status

    def delete_certificate(self, certificate_id: str) -> None:
        """Forget a certificate, as AWS only once it is not ACTIVE and nothing is attached
        (https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteCertificate.html)."""
        with self.batch():
            raw = self._stored("certificates", certificate_id)
            if raw["status"] == ACTIVE:
                raise CertificateState("deactivate the certificate before deleting it")
            arn = raw["certificateArn"]
            if self.principal_things(arn) or self.attached_policies(arn):
                raise DeleteConflict(f"certificate {certificate_id} is still attached")
            del self._data["certificates"][certificate_id]

    def certificate_principal(self, certificate_id: str) -> Principal | None:
        """The principal for a certificate presented over mutual TLS, or None to refuse it
        (unknown, INACTIVE or REVOKED: the CA's signature alone is not enough)."""
        self.refresh()
        with self._lock:
            if certificate_id in self._principals:
                return self._principals[certificate_id]
            raw = self._data["certificates"].get(certificate_id)
            principal = None
            if raw is not None and raw["status"] == ACTIVE:
                cert = x509.load_pem_x509_certificate(raw["certificatePem"].encode())
                attributes = [(CERTIFICATE_ID_VARIABLE, certificate_id)]
                attributes += _name_attributes("Subject", cert.subject)
                attributes += _name_attributes("Issuer", cert.issuer)
                principal = Principal("certificate", certificate_id, tuple(attributes))
            self._principals[certificate_id] = principal
            return principal

    # ------------------------------------------------------------------ things

    def thing_arn(self, name: str) -> str:
        return f"arn:aws:iot:{self.region}:{self.account_id}:thing/{name}"

    def create_thing(self, name: str, attributes: dict[str, str] | None = None) -> ThingRecord:
        """Create a thing; as on AWS, creating it again with the same attributes is a no-op."""
        check_name(THING_NAME, name, "thing name")
        attributes = dict(attributes or {})
        if len(attributes) > MAX_ATTRIBUTES:
            raise InvalidRequest(f"a thing without a type has at most {MAX_ATTRIBUTES} attributes")
        for key, value in attributes.items():
            check_name(ATTRIBUTE_NAME, key, "attribute name")
            check_name(ATTRIBUTE_VALUE, value, "attribute value")
        with self.batch():
            existing = self._data["things"].get(name)
            if existing is not None:
                if existing["attributes"] != attributes:
                    raise ResourceAlreadyExists(f"thing {name} exists with other attributes")
            else:
                self._data["things"][name] = {
                    "thingName": name,
                    "thingArn": self.thing_arn(name),
                    "attributes": attributes,
                }
        return self.describe_thing(name)

    def describe_thing(self, name: str) -> ThingRecord:
        self.refresh()
        raw = self._stored("things", name)
        return ThingRecord(raw["thingName"], raw["thingArn"], dict(raw["attributes"]))

    def delete_thing(self, name: str) -> None:
        """Delete a thing; as on AWS, deleting one that does not exist succeeds
        (https://docs.aws.amazon.com/iot/latest/apireference/API_DeleteThing.html); its
        principals must be detached first, so no attachment outlives the thing."""
        with self.batch():
            if name not in self._data["things"]:
                return
            if self.thing_principals(name):
                raise InvalidRequest(f"thing {name} still has principals attached")
            del self._data["things"][name]

    def has_thing(self, name: str) -> bool:
        self.refresh()
        return name in self._data["things"]

    def list_things(self) -> list[str]:
        self.refresh()
        return sorted(self._data["things"])

    # ------------------------------------------------------------------ attachments

    def _check_principal(self, principal: str) -> None:
        """A certificate ARN of this account (registered) or a Cognito identity id."""
        prefix = self.certificate_arn("")
        if principal.startswith(prefix):
            self._stored("certificates", principal[len(prefix) :])
        elif not COGNITO_IDENTITY_ID.fullmatch(principal):
            raise InvalidRequest(f"{principal!r} is neither a certificate ARN nor an identity id")

    def attach_thing_principal(self, thing: str, principal_arn: str) -> None:
        with self.batch():
            self._stored("things", thing)
            self._check_principal(principal_arn)
            pair = [thing, principal_arn]
            if pair not in self._data["thingPrincipals"]:
                self._data["thingPrincipals"].append(pair)

    def detach_thing_principal(self, thing: str, principal_arn: str) -> None:
        missing = f"{principal_arn} is not attached to thing {thing}"
        self._detach("thingPrincipals", [thing, principal_arn], missing)

    def thing_principals(self, thing: str) -> list[str]:
        self.refresh()
        return [p for t, p in self._data["thingPrincipals"] if t == thing]

    def things_for_certificate(self, certificate_id: str) -> list[str]:
        return self.principal_things(self.certificate_arn(certificate_id))

    def principal_things(self, principal_arn: str) -> list[str]:
        self.refresh()
        return sorted(t for t, p in self._data["thingPrincipals"] if p == principal_arn)

    def attach_policy(self, policy_name: str, target: str) -> None:
        """Attach an IoT policy to a certificate ARN or a Cognito identity id (idempotent).

        Whether the policy exists is the policy store's business, not the registry's."""
        check_name(POLICY_NAME, policy_name, "policy name")
        with self.batch():
            self._check_principal(target)
            pair = [policy_name, target]
            if pair in self._data["policyAttachments"]:
                return
            if len(self.attached_policies(target)) >= MAX_POLICIES_PER_TARGET:
                raise LimitExceeded(f"at most {MAX_POLICIES_PER_TARGET} policies per target")
            self._data["policyAttachments"].append(pair)

    def detach_policy(self, policy_name: str, target: str) -> None:
        missing = f"policy {policy_name} is not attached to {target}"
        self._detach("policyAttachments", [policy_name, target], missing)

    def _detach(self, table: str, pair: list[str], missing: str) -> None:
        """Remove one attachment ``pair`` from ``table``; ResourceNotFound when absent."""
        with self.batch():
            if pair not in self._data[table]:
                raise ResourceNotFound(missing)
            self._data[table].remove(pair)

    def attached_policies(self, target: str) -> list[str]:
        self.refresh()
        return sorted(p for p, t in self._data["policyAttachments"] if t == target)

    def policy_targets(self, policy_name: str) -> list[str]:
        self.refresh()
        return sorted(t for p, t in self._data["policyAttachments"] if p == policy_name)

    # ------------------------------------------------------------------ policy variables

    def connection_attributes(self, certificate_id: str, client_id: str) -> dict[str, str]:
        """Thing policy variables for a connection (non-exclusive association, AWS's default):
        they resolve only when ``client_id`` names a thing attached to the certificate."""
        return self.principal_connection_attributes(self.certificate_arn(certificate_id), client_id)

    def principal_connection_attributes(self, principal: str, client_id: str) -> dict[str, str]:
        self.refresh()
        with self._lock:
            thing = self._data["things"].get(client_id)
            if thing is None or [client_id, principal] not in self._data["thingPrincipals"]:
                return {THING_ATTACHED_VARIABLE: "false"}
            values = {THING_NAME_VARIABLE: client_id, THING_ATTACHED_VARIABLE: "true"}
            for key, value in thing["attributes"].items():
                values[THING_ATTRIBUTE_VARIABLE.format(key)] = value
            return values


def check_name(pattern: re.Pattern[str], value: str, what: str) -> None:
    """Refuse ``value`` (InvalidRequest) unless it is a string ``pattern`` matches whole."""
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidRequest(f"invalid {what}: {value!r}")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InvalidRequest(f"status must be one of {', '.join(sorted(STATUSES))}")
