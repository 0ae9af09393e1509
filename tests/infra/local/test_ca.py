"""The local CA: files on disk, chains that strict verifiers accept, and mutual TLS.

The end-to-end tests matter most: a certificate can look right and still be refused by
OpenSSL's strict mode or by awscrt's s2n, which is what the device SDK uses.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from infra.local import ca as ca_module
from infra.local.ca import IssuedCertificate, LocalCA, certificate_id

try:
    from cryptography.x509 import verification
except ImportError:  # pragma: no cover - cryptography < 42
    verification = None  # type: ignore[assignment]


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def der(path: Path) -> bytes:
    return load(path).public_bytes(serialization.Encoding.DER)


def client_verifier(ca: LocalCA) -> verification.ClientVerifier | None:
    """A client-chain verifier trusting only ``ca``, or None if cryptography lacks one.

    The web PKI profile demands a subjectAltName on client certificates; device
    certificates from AWS IoT have none, and neither do ours, so that rule is relaxed.
    """
    if verification is None or not hasattr(verification, "ExtensionPolicy"):
        return None
    policy = verification.ExtensionPolicy
    ee_policy = policy.webpki_defaults_ee().may_be_present(
        x509.SubjectAlternativeName, verification.Criticality.AGNOSTIC, None
    )
    builder = verification.PolicyBuilder().store(verification.Store([ca.certificate]))
    builder = builder.extension_policies(ca_policy=policy.webpki_defaults_ca(), ee_policy=ee_policy)
    return builder.build_client_verifier()


def test_create_writes_a_ca(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ca")
    assert ca.ca_path == tmp_path / "ca" / "ca.pem"
    assert stat.S_IMODE((tmp_path / "ca" / "ca.key").stat().st_mode) == 0o600
    cert = load(ca.ca_path)
    common_names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    assert [attribute.value for attribute in common_names] == ["iotchat local CA"]
    assert cert.subject == cert.issuer
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.crl_sign
    key = cert.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert lifetime >= datetime.timedelta(days=3650)
    cert.verify_directly_issued_by(cert)


def test_reload_gives_the_same_ca(tmp_path: Path) -> None:
    first = LocalCA.load_or_create(tmp_path)
    pem, key = first.ca_path.read_bytes(), (tmp_path / "ca.key").read_bytes()
    second = LocalCA.load_or_create(tmp_path)
    assert second.certificate == first.certificate
    assert second.ca_path.read_bytes() == pem
    assert (tmp_path / "ca.key").read_bytes() == key
    # Something issued by the reloaded CA chains to the original certificate.
    issued = second.issue_client_certificate("device")
    load(issued.cert_path).verify_directly_issued_by(first.certificate)


def test_mismatched_key_is_refused(tmp_path: Path) -> None:
    LocalCA.load_or_create(tmp_path / "a")
    LocalCA.load_or_create(tmp_path / "b")
    (tmp_path / "a" / "ca.key").write_bytes((tmp_path / "b" / "ca.key").read_bytes())
    with pytest.raises(ValueError, match="do not match"):
        LocalCA.load_or_create(tmp_path / "a")


def test_client_certificate(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    issued = ca.issue_client_certificate("thing-1")
    assert issued.cert_path == tmp_path / "certs" / f"{issued.certificate_id}.pem"
    assert issued.key_path == tmp_path / "certs" / f"{issued.certificate_id}.key"
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600
    assert issued.certificate_pem == issued.cert_path.read_text()
    assert issued.certificate_id == hashlib.sha256(der(issued.cert_path)).hexdigest()
    assert issued.certificate_id == certificate_id(der(issued.cert_path))
    assert (
        len(issued.certificate_id) == 64 and issued.certificate_id == issued.certificate_id.lower()
    )

    cert = load(issued.cert_path)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert datetime.timedelta(days=364) < lifetime < datetime.timedelta(days=367)
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
    assert key.public_key() == cert.public_key()

    verifier = client_verifier(ca)
    if verifier is not None:
        assert verifier.verify(cert, []).chain[-1] == ca.certificate
    else:  # pragma: no cover - cryptography without ExtensionPolicy
        cert.verify_directly_issued_by(ca.certificate)

    other = ca.issue_client_certificate("thing-2", tmp_path / "elsewhere")
    assert other.cert_path.parent == tmp_path / "elsewhere"
    assert other.certificate_id != issued.certificate_id


def test_client_certificate_from_another_ca_does_not_chain(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ours")
    foreign = LocalCA.load_or_create(tmp_path / "theirs").issue_client_certificate("intruder")
    cert = load(foreign.cert_path)
    with pytest.raises(Exception):  # noqa: B017 - ValueError or InvalidSignature
        cert.verify_directly_issued_by(ca.certificate)
    verifier = client_verifier(ca)
    if verifier is not None:
        with pytest.raises(verification.VerificationError):
            verifier.verify(cert, [])


def test_server_certificate_verifies_for_localhost_and_loopback(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    issued = ca.server_certificate()
    assert issued.cert_path == tmp_path / "server.pem"
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600
    cert = load(issued.cert_path)
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    if verification is None:  # pragma: no cover
        cert.verify_directly_issued_by(ca.certificate)
        return
    store = verification.Store([ca.certificate])
    subjects: list[verification.Subject] = [
        verification.DNSName("localhost"),
        verification.IPAddress(ipaddress.ip_address("127.0.0.1")),
        verification.IPAddress(ipaddress.ip_address("::1")),
    ]
    for subject in subjects:
        verifier = verification.PolicyBuilder().store(store).build_server_verifier(subject)
        assert verifier.verify(cert, [])[-1] == ca.certificate
    wrong = verification.PolicyBuilder().store(store)
    with pytest.raises(verification.VerificationError):
        wrong.build_server_verifier(verification.DNSName("example.com")).verify(cert, [])


def test_server_certificate_reuse_and_reissue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    first = ca.server_certificate()
    assert ca.server_certificate().certificate_id == first.certificate_id
    assert ca.server_certificate(["localhost"], ["::1", "127.0.0.1"]) == first

    renamed = ca.server_certificate(["localhost", "gateway.local"])
    assert renamed.certificate_id != first.certificate_id
    assert (
        LocalCA.load_or_create(tmp_path).server_certificate(["localhost", "gateway.local"])
        == renamed
    )

    # Within 30 days of expiry it is replaced.
    later = ca_module._now() + datetime.timedelta(days=370)
    monkeypatch.setattr(ca_module, "_now", lambda: later)
    assert ca.server_certificate(["localhost", "gateway.local"]) != renamed


def test_server_certificate_from_a_replaced_ca_is_reissued(tmp_path: Path) -> None:
    old = LocalCA.load_or_create(tmp_path / "old").server_certificate()
    ca = LocalCA.load_or_create(tmp_path / "new")
    for source in (old.cert_path, old.key_path):
        (tmp_path / "new" / source.name).write_bytes(source.read_bytes())
    fresh = ca.server_certificate()
    assert fresh.certificate_id != old.certificate_id
    load(fresh.cert_path).verify_directly_issued_by(ca.certificate)


def client_context(ca: LocalCA, issued: IssuedCertificate | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca.ca_path))
    context.verify_flags |= ssl.VERIFY_X509_STRICT  # the default from Python 3.13 on
    if issued is not None:
        context.load_cert_chain(issued.cert_path, issued.key_path)
    return context


async def exchange(
    server_context: ssl.SSLContext, context: ssl.SSLContext, server_hostname: str
) -> tuple[bytes | BaseException, list[str]]:
    """Connect once; return what the server said (or the error) and the ids it saw."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        seen.append(certificate_id(peer) if peer else "")
        writer.write(b"ok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
    port = server.sockets[0].getsockname()[1]
    result: bytes | BaseException
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=context, server_hostname=server_hostname
        )
        try:
            result = await reader.read()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ssl.SSLError, ConnectionError) as exc:
                result = result if isinstance(result, bytes) and result else exc
    except (ssl.SSLError, ConnectionError) as exc:
        result = exc
    finally:
        server.close()
        await server.wait_closed()
    return result, seen


@pytest.mark.parametrize("server_hostname", ["localhost", "127.0.0.1"])
def test_mutual_tls_end_to_end(tmp_path: Path, server_hostname: str) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    issued = ca.issue_client_certificate("thing-1")
    server_context = ca.server_ssl_context(require_client_cert=True)
    assert server_context.verify_mode == ssl.CERT_REQUIRED
    assert server_context.minimum_version >= ssl.TLSVersion.TLSv1_2
    result, seen = asyncio.run(
        exchange(server_context, client_context(ca, issued), server_hostname)
    )
    assert result == b"ok"
    assert seen == [issued.certificate_id]


@pytest.mark.parametrize("presented", ["foreign", "none"])
def test_mutual_tls_rejects_a_foreign_or_missing_client_certificate(
    tmp_path: Path, presented: str
) -> None:
    ca = LocalCA.load_or_create(tmp_path / "ours")
    client_cert = (
        LocalCA.load_or_create(tmp_path / "theirs").issue_client_certificate("intruder")
        if presented == "foreign"
        else None
    )
    server_context = ca.server_ssl_context(require_client_cert=True)
    result, seen = asyncio.run(
        exchange(server_context, client_context(ca, client_cert), "localhost")
    )
    # With TLS 1.3 the client may finish its side before the server's alert arrives, so the
    # failure shows as an error or an empty read; either way the server never accepted it.
    assert result == b"" or isinstance(result, (ssl.SSLError, ConnectionError))
    assert seen == []


def test_server_only_tls(tmp_path: Path) -> None:
    ca = LocalCA.load_or_create(tmp_path)
    server_context = ca.server_ssl_context(require_client_cert=False)
    result, seen = asyncio.run(exchange(server_context, client_context(ca, None), "localhost"))
    assert result == b"ok"
    assert seen == [""]


def test_awscrt_accepts_the_server_and_presents_the_client_certificate(tmp_path: Path) -> None:
    """The device SDK's TLS stack (s2n on Linux) is stricter than OpenSSL in places."""
    awscrt_io = pytest.importorskip("awscrt.io")
    awscrt_http = pytest.importorskip("awscrt.http")
    ca = LocalCA.load_or_create(tmp_path)
    issued = ca.issue_client_certificate("sdk-device")
    server_context = ca.server_ssl_context(require_client_cert=True)

    def connect(port: int) -> None:
        options = awscrt_io.TlsContextOptions.create_client_with_mtls_from_path(
            str(issued.cert_path), str(issued.key_path)
        )
        options.override_default_trust_store_from_path(None, str(ca.ca_path))
        connection_options = awscrt_io.ClientTlsContext(options).new_connection_options()
        connection_options.set_server_name("localhost")
        connection = awscrt_http.HttpClientConnection.new(
            host_name="127.0.0.1", port=port, tls_connection_options=connection_options
        ).result(10)
        connection.close().result(10)

    async def run() -> list[str]:
        seen: list[str] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            peer = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
            seen.append(certificate_id(peer))
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_context)
        try:
            await asyncio.to_thread(connect, server.sockets[0].getsockname()[1])
        finally:
            server.close()
            await server.wait_closed()
        return seen

    assert asyncio.run(run()) == [issued.certificate_id]
