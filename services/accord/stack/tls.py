"""The local stack's TLS: a private CA and the certificates it signs, made at first start.

Kafka's listeners, the schema registry and the gateway serve the same server certificate
(subject alternative names 127.0.0.1, ::1 and localhost, and the names of ACCORD_TLS_NAMES,
e.g. the compose service names); every client verifies it against
the CA (`Settings.trusted_ca`). The KRaft controller listener takes only the broker's own
client certificate (mutual TLS), so no client credential reaches it. Keys are EC P-256,
written 0600 under the 0700 TLS directory; nothing here is ever committed.

A real deployment brings its own CA and certificates: point ACCORD_CA_FILE at its bundle.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from accord.core.credentials import private_dir, write_private
from accord.core.settings import Settings

VALID_DAYS = 825  # what browsers and most TLS stacks accept for a server certificate
SERVER_NAMES = ("localhost",)
SERVER_ADDRESSES = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate (public), what clients trust
    server_cert: Path  # server certificate chain (leaf, then CA)
    server_key: Path  # its private key (PKCS#8, unencrypted, 0600)
    server_pem: Path  # key and chain in one file, as Kafka's PEM keystore reads it
    controller_pem: Path  # the broker's client certificate for the controller listener


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Accord local stack"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _cert_pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _issue(
    common_name: str,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    usages: list[x509.ObjectIdentifier],
    san: list[x509.GeneralName],
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
    )
    builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    return key, builder.sign(ca_key, hashes.SHA256())


def _new_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Accord local CA"))
        .issuer_name(_name("Accord local CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def server_names(settings: Settings) -> list[str]:
    """Every name the server certificates cover: the defaults, then ACCORD_TLS_NAMES."""
    extra = [n.strip() for n in settings.tls_names.split(",") if n.strip()]
    return list(dict.fromkeys([*SERVER_NAMES, *SERVER_ADDRESSES, *extra]))


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def certificate_names(path: Path) -> set[str]:
    """The DNS names and IP addresses of the (first) certificate in a PEM file."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)) | {
        str(a) for a in san.get_values_for_type(x509.IPAddress)
    }


def missing_names(settings: Settings) -> list[str]:
    """Names asked for that the existing server certificate does not cover (made before
    ACCORD_TLS_NAMES named them); empty when it covers all, or when there is none yet."""
    cert = tls_files(settings).server_cert
    if not cert.exists():
        return []
    have = certificate_names(cert)
    return [n for n in server_names(settings) if str(_general_name(n).value) not in have]


def tls_files(settings: Settings) -> TlsFiles:
    d = settings.tls_dir
    return TlsFiles(
        ca=d / "ca.pem",
        server_cert=d / "server.pem",
        server_key=d / "server-key.pem",
        server_pem=d / "server-keystore.pem",
        controller_pem=d / "controller-keystore.pem",
    )


def ensure_tls(settings: Settings) -> TlsFiles:
    """The stack's CA and certificates, made once (kept between runs)."""
    files = tls_files(settings)
    if all(
        p.exists()
        for p in (
            files.ca,
            files.server_cert,
            files.server_key,
            files.server_pem,
            files.controller_pem,
        )
    ):
        return files
    private_dir(settings.tls_dir)
    ca_key, ca_cert = _new_ca()
    san = [_general_name(n) for n in server_names(settings)]
    server_key, server_cert = _issue(
        "accord-stack", ca_key, ca_cert, [ExtendedKeyUsageOID.SERVER_AUTH], san
    )
    # The controller listener's certificate both serves it and authenticates the broker to
    # it (mutual TLS): only a process holding this key reaches the controller.
    controller_key, controller_cert = _issue(
        "accord-controller",
        ca_key,
        ca_cert,
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        san,
    )
    ca = _cert_pem(ca_cert)
    # The CA's own key is not kept: nothing more is signed after the stack is made.
    write_private(files.server_key, _key_pem(server_key))
    write_private(files.server_cert, _cert_pem(server_cert) + ca)
    write_private(files.server_pem, _key_pem(server_key) + _cert_pem(server_cert) + ca)
    write_private(
        files.controller_pem,
        _key_pem(controller_key) + _cert_pem(controller_cert) + ca,
    )
    write_private(files.ca, ca)  # written last: its presence means the set is complete
    return files


def server_tls(settings: Settings) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the stack's certificate, for the registry and the
    gateway (made on first use)."""
    files = ensure_tls(settings)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(files.server_cert, files.server_key)
    return context
