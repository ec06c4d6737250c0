"""Modbus/TCP Security (TLS with client certificates and roles) and exposure warnings.

Theory of operation
-------------------
The Modbus.org "MODBUS/TCP Security Protocol Specification" carries unchanged MBAP
frames inside TLS (1.2 or later) on port 802 (:data:`MODBUS_TLS_PORT`), with mutual
authentication: the server presents its certificate and requires one from the client,
both chained to a trusted CA. Authorisation is by role: the client certificate's
X.509v3 extension :data:`ROLE_OID` holds an ASN.1 UTF8String naming it, and the server
maps roles to rights. Here a role in :attr:`TlsSettings.write_roles` (``operator`` by
default) may read and write; any other role, and a certificate without the extension,
may only read, and its writes answer exception 0x01 (illegal function), as writes do
when the twin runs without ``--allow-writes``. A role never widens the twin's own
locks: with writes off, nobody writes.

:class:`TlsSettings` is the validated configuration (paths and roles), checked once at
the boundary; :meth:`TlsSettings.policy` loads the files into an
:class:`ssl.SSLContext` and names the file that is missing or wrong.
:func:`exposure_warning` is what ``minimeter run`` prints when it listens beyond the
loopback interface with writes or energy reset on and no TLS.
"""

from __future__ import annotations

import ipaddress
import ssl
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Final

from twin.errors import ConfigError

MODBUS_TLS_PORT: Final = 802  # IANA "mbap-s"
ROLE_OID: Final = "1.3.6.1.4.1.50316.802.1"  # Modbus.org role extension (UTF8String)
DEFAULT_WRITE_ROLES: Final = frozenset({"operator"})
_UTF8_STRING, _PRINTABLE_STRING, _IA5_STRING = 0x0C, 0x13, 0x16


class Rights(StrEnum):
    READ_ONLY = "read-only"
    READ_WRITE = "read-write"


READ_WRITE: Final = Rights.READ_WRITE


@dataclass(frozen=True, slots=True)
class TlsPolicy:
    """A loaded server context and the roles that may write."""

    context: ssl.SSLContext
    write_roles: frozenset[str] = DEFAULT_WRITE_ROLES

    def rights(self, role: str | None) -> Rights:
        return Rights.READ_WRITE if role in self.write_roles else Rights.READ_ONLY


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """``--tls-cert/--tls-key/--tls-ca`` (and ``--tls-write-role``), validated once."""

    cert: Path
    key: Path
    ca: Path
    write_roles: frozenset[str] = field(default=DEFAULT_WRITE_ROLES)

    def __post_init__(self) -> None:
        for option, path in (("--tls-cert", self.cert), ("--tls-key", self.key)):
            if not Path(path).is_file():
                raise ConfigError(f"{option} {path}: no such file; expected a PEM file")
        if not Path(self.ca).is_file():
            raise ConfigError(f"--tls-ca {self.ca}: no such file; expected the clients' CA (PEM)")
        for role in self.write_roles:
            if not role or not role.isprintable():
                raise ConfigError(f"--tls-write-role {role!r}: expected a printable role name")

    def policy(self) -> TlsPolicy:
        """The server context: TLS >= 1.2, client certificates required from ``ca``."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.verify_mode = ssl.CERT_REQUIRED
        try:
            context.load_cert_chain(self.cert, self.key)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"--tls-cert {self.cert} / --tls-key {self.key}: {_reason(exc)}; expected a "
                "PEM certificate and its private key"
            ) from None
        try:
            context.load_verify_locations(cafile=self.ca)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(
                f"--tls-ca {self.ca}: {_reason(exc)}; expected PEM CA certificates"
            ) from None
        return TlsPolicy(context, self.write_roles)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def certificate_role(der: bytes) -> str | None:
    """The Modbus role of a DER certificate (None: no role extension, or not a string)."""
    from cryptography import x509  # only TLS connections pay for the import

    try:
        cert = x509.load_der_x509_certificate(der)
        ext = cert.extensions.get_extension_for_oid(x509.ObjectIdentifier(ROLE_OID))
    except (ValueError, x509.ExtensionNotFound):
        return None
    value = ext.value
    raw = value.value if isinstance(value, x509.UnrecognizedExtension) else b""
    return decode_der_string(raw)


def decode_der_string(raw: bytes) -> str | None:
    """A DER UTF8String (or Printable/IA5String) to text; None when it is not one."""
    if len(raw) < 2 or raw[0] not in (_UTF8_STRING, _PRINTABLE_STRING, _IA5_STRING):
        return None
    length, at = raw[1], 2
    if length & 0x80:  # long form: the next (length & 0x7F) bytes give the length
        size = length & 0x7F
        if not 1 <= size <= 2 or len(raw) < 2 + size:
            return None
        length, at = int.from_bytes(raw[2 : 2 + size], "big"), 2 + size
    if len(raw) != at + length:
        return None
    try:
        return raw[at:].decode("utf-8")
    except UnicodeDecodeError:
        return None


def encode_der_utf8(text: str) -> bytes:
    """The DER UTF8String of ``text`` (what a role extension holds)."""
    body = text.encode("utf-8")
    n = len(body)
    length = bytes((n,)) if n < 0x80 else bytes((0x81, n)) if n < 0x100 else b"\x82" + n.to_bytes(2)
    return bytes((_UTF8_STRING,)) + length + body


def is_loopback(host: str) -> bool:
    """Whether ``host`` listens on the loopback interface only ("" and 0.0.0.0 do not)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve beyond loopback


def exposure_warning(
    host: str, *, allow_writes: bool, allow_energy_reset: bool, tls: bool
) -> str | None:
    """A warning line when the twin accepts writes beyond loopback without TLS."""
    if tls or is_loopback(host) or not (allow_writes or allow_energy_reset):
        return None
    unlocked = " and ".join(
        what for what, on in (("writes", allow_writes), ("energy reset", allow_energy_reset)) if on
    )
    where = host or "every interface"
    return (
        f"warning: listening on {where} with {unlocked} on and no TLS: anyone who can "
        "reach this port can change the meter; bind 127.0.0.1 (the default), use "
        "--tls-cert/--tls-key/--tls-ca, or put it behind a firewall (docs/security.md)"
    )
