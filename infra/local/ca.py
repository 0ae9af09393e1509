"""The local stack's certificate authority.

AWS IoT Core speaks TLS only, with device certificates for mutual TLS. To behave the same
locally we need a CA we control: it signs the gateway's server certificate (so clients can
pin ``ca.pem`` instead of disabling verification) and the device certificates that stand
in for ``CreateKeysAndCertificate``. EC P-256 keeps issuing fast. The extensions are the
full set strict verifiers (awscrt's s2n, Python's ``VERIFY_X509_STRICT``,
``cryptography.x509.verification``) insist on.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from infra.local.state_files import directory_lock, write_atomic

CA_COMMON_NAME = "iotchat local CA"
CA_VALIDITY = datetime.timedelta(days=3650)
SERVER_VALIDITY = datetime.timedelta(days=397)  # longest leaf lifetime browsers accept
CLIENT_VALIDITY = datetime.timedelta(days=365)
SERVER_RENEW_BEFORE = datetime.timedelta(days=30)
BACKDATE = datetime.timedelta(minutes=5)  # tolerate small clock differences

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def certificate_id(der: bytes) -> str:
    """AWS IoT's certificate id: the lowercase hex SHA-256 of the DER certificate."""
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class IssuedCertificate:
    """A certificate and its private key on disk, plus what AWS IoT would report for it."""

    cert_path: Path
    key_path: Path
    certificate_id: str
    certificate_pem: str


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path.name} is not an EC private key")
    return key


def _same_key(cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> bool:
    return cert.public_key() == key.public_key()


def _key_usage(
    *, signs_certificates: bool = False, key_encipherment: bool = False
) -> x509.KeyUsage:
    """Digital signatures always; certificate and CRL signing for the CA only; key
    encipherment where the caller asks for it (the server certificate)."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


class LocalCA:
    """A self-signed CA kept in ``directory`` (``ca.pem`` + ``ca.key``)."""

    def __init__(
        self, directory: Path, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate
    ) -> None:
        self.directory = directory
        self.key = key
        self.certificate = certificate

    @property
    def ca_path(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def key_path(self) -> Path:
        return self.directory / "ca.key"

    @property
    def certificate_pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @classmethod
    def load_or_create(cls, directory: Path) -> LocalCA:
        """Load the CA from ``directory``, creating it on first use."""
        directory = Path(directory)
        with directory_lock(directory):  # concurrent first runs: ca.pem and ca.key match
            cert_path, key_path = directory / "ca.pem", directory / "ca.key"
            if cert_path.exists() and key_path.exists():
                certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = _load_key(key_path)
                if not _same_key(certificate, key):
                    raise ValueError(f"ca.pem and ca.key in {directory.name!r} do not match")
                return cls(directory, key, certificate)
            key = ec.generate_private_key(ec.SECP256R1())
            certificate = cls._self_signed(key)
            # Private like every file of the state dir, certificates included (one mode to
            # check); a device bundle gets its own copy of ca.pem (registry/devices.py).
            write_atomic(key_path, _key_pem(key), 0o600)
            write_atomic(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o600)
            return cls(directory, key, certificate)

    @staticmethod
    def _self_signed(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "iotchat"),
                x509.NameAttribute(NameOID.COMMON_NAME, CA_COMMON_NAME),
            ]
        )
        now = _now()
        public = key.public_key()
        return (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + CA_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False
            )
            .sign(key, hashes.SHA256())
        )

    def _issue(
        self,
        public: ec.EllipticCurvePublicKey | rsa.RSAPublicKey,
        common_name: str,
        validity: datetime.timedelta,
        usage: x509.ObjectIdentifier,
        key_encipherment: bool,
        san: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        now = _now()
        not_after = min(now + validity, self.certificate.not_valid_after_utc)
        ca_ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(key_encipherment=key_encipherment), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski.value),
                critical=False,
            )
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def _issued_by_me(self, cert: x509.Certificate) -> bool:
        try:
            cert.verify_directly_issued_by(self.certificate)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    def server_certificate(
        self,
        hostnames: Iterable[str] = ("localhost",),
        ips: Iterable[str] = ("127.0.0.1", "::1"),
    ) -> IssuedCertificate:
        """The gateway's certificate (``server.pem`` + ``server.key``), reissued only when
        it is from another CA, has other names, or has 30 days or less left."""
        names = list(dict.fromkeys(hostnames))
        addresses: list[IPAddress] = list(dict.fromkeys(ipaddress.ip_address(ip) for ip in ips))
        if not names and not addresses:
            raise ValueError("a server certificate needs at least one hostname or IP")
        cert_path, key_path = self.directory / "server.pem", self.directory / "server.key"
        with directory_lock(self.directory):
            existing = self._reusable_server(cert_path, key_path, set(names), set(addresses))
            if existing is not None:
                return existing
            san: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
            san += [x509.IPAddress(a) for a in addresses]
            key = ec.generate_private_key(ec.SECP256R1())
            common_name = names[0] if names else str(addresses[0])
            cert = self._issue(
                key.public_key(),
                common_name,
                SERVER_VALIDITY,
                ExtendedKeyUsageOID.SERVER_AUTH,
                True,
                san,
            )
            return self._store(cert, key, cert_path, key_path)

    def _reusable_server(
        self, cert_path: Path, key_path: Path, names: set[str], addresses: set[IPAddress]
    ) -> IssuedCertificate | None:
        if not (cert_path.exists() and key_path.exists()):
            return None
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = _load_key(key_path)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound):
            return None
        if (
            not _same_key(cert, key)
            or not self._issued_by_me(cert)
            or cert.not_valid_after_utc - _now() <= SERVER_RENEW_BEFORE
            or set(san.get_values_for_type(x509.DNSName)) != names
            or set(san.get_values_for_type(x509.IPAddress)) != addresses
        ):
            return None
        return IssuedCertificate(
            cert_path,
            key_path,
            certificate_id(cert.public_bytes(serialization.Encoding.DER)),
            cert.public_bytes(serialization.Encoding.PEM).decode(),
        )

    def issue_client_certificate(
        self, common_name: str, directory: Path | None = None
    ) -> IssuedCertificate:
        """A device certificate for mutual TLS, like ``CreateKeysAndCertificate``.

        Files are named after the certificate id, as AWS IoT identifies certificates by it.
        """
        directory = Path(directory) if directory is not None else self.directory / "certs"
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._issue(
            key.public_key(), common_name, CLIENT_VALIDITY, ExtendedKeyUsageOID.CLIENT_AUTH, False
        )
        cert_id = certificate_id(cert.public_bytes(serialization.Encoding.DER))
        return self._store(cert, key, directory / f"{cert_id}.pem", directory / f"{cert_id}.key")

    def sign_request(self, csr_pem: bytes, common_name: str) -> str:
        """A device certificate (PEM) for the key of a certificate signing request, as AWS IoT's
        ``CreateCertificateFromCsr``; ValueError for a CSR that is malformed or not signed by
        its own key."""
        csr = x509.load_pem_x509_csr(csr_pem)
        if not csr.is_signature_valid:
            raise ValueError("the CSR is not signed by its own key")
        public = csr.public_key()
        if not isinstance(public, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
            raise ValueError("the CSR's key is neither EC nor RSA")
        cert = self._issue(
            public, common_name, CLIENT_VALIDITY, ExtendedKeyUsageOID.CLIENT_AUTH, False
        )
        return cert.public_bytes(serialization.Encoding.PEM).decode()

    def issued(self, certificate_pem: bytes) -> bool:
        """True when this CA signed the certificate (what ``RegisterCertificate`` accepts)."""
        try:
            return self._issued_by_me(x509.load_pem_x509_certificate(certificate_pem))
        except ValueError:
            return False

    @staticmethod
    def _store(
        cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, cert_path: Path, key_path: Path
    ) -> IssuedCertificate:
        pem = cert.public_bytes(serialization.Encoding.PEM)
        write_atomic(key_path, _key_pem(key), 0o600)
        write_atomic(cert_path, pem, 0o600)
        return IssuedCertificate(
            cert_path,
            key_path,
            certificate_id(cert.public_bytes(serialization.Encoding.DER)),
            pem.decode(),
        )

    def server_ssl_context(
        self,
        require_client_cert: bool,
        *,
        hostnames: Iterable[str] = ("localhost",),
        ips: Iterable[str] = ("127.0.0.1", "::1"),
    ) -> ssl.SSLContext:
        """A TLS 1.2+ server context for the gateway.

        With ``require_client_cert`` only certificates issued by this CA are accepted
        (mutual TLS, as on AWS IoT's port 8883); otherwise no client certificate is asked
        for (WebSocket clients authenticate with SigV4 instead).
        """
        issued = self.server_certificate(hostnames, ips)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(issued.cert_path, issued.key_path)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=self.ca_path)
        else:
            context.verify_mode = ssl.CERT_NONE
        return context
