"""Test certificates for Modbus/TCP Security: a trustme CA, a server certificate for
127.0.0.1, and client certificates carrying the Modbus.org role extension.

trustme issues the CA and the server certificate; a client certificate with a role is
signed here with ``cryptography`` by the same CA (trustme has no custom extensions),
the role as a DER UTF8String under OID 1.3.6.1.4.1.50316.802.1.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from twin.modbus.security import ROLE_OID, encode_der_utf8


@dataclass(frozen=True)
class ClientCert:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TlsFiles:
    dir: Path
    ca: Path
    server_cert: Path
    server_key: Path

    def client(self, name: str) -> ClientCert:
        return ClientCert(self.dir / f"{name}.pem", self.dir / f"{name}.key")


def make_tls_files(directory: Path, roles: dict[str, str | None]) -> TlsFiles:
    """CA, server (server.pem/.key, ca.pem) and one client per ``roles`` entry
    (name -> role, None: no role extension); a ``stranger`` client from another CA."""
    ca = trustme.CA()
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(directory / "server.pem"))
    server.private_key_pem.write_to_path(str(directory / "server.key"))
    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem.bytes())
    ca_key = serialization.load_pem_private_key(ca.private_key_pem.bytes(), password=None)
    for name, role in roles.items():
        _client(directory, name, role, ca_cert, ca_key)
    other = trustme.CA()
    other_cert = x509.load_pem_x509_certificate(other.cert_pem.bytes())
    other_key = serialization.load_pem_private_key(other.private_key_pem.bytes(), password=None)
    _client(directory, "stranger", "operator", other_cert, other_key)
    return TlsFiles(
        directory, directory / "ca.pem", directory / "server.pem", directory / "server.key"
    )


def _client(
    directory: Path, name: str, role: str | None, ca_cert: x509.Certificate, ca_key: object
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
    )
    if role is not None:
        ext = x509.UnrecognizedExtension(x509.ObjectIdentifier(ROLE_OID), encode_der_utf8(role))
        builder = builder.add_extension(ext, critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    (directory / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
