"""Modbus/TCP Security: TLS with mutual authentication; the certificate's role decides.

Certificates from trustme (CA, server) plus clients carrying the Modbus.org role
extension; a pymodbus TLS client (its TLS framer is MBAP, as the spec carries it) and
``openssl s_client`` talk to the twin's TCP server with a TLS policy.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import struct
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTlsClient

from tests.helpers import TwinProcess
from tests.modbus.tlscerts import TlsFiles, make_tls_files
from twin.core import MeterConfig, MeterCore, SampleBlock
from twin.errors import ConfigError
from twin.modbus import MeterEndpoint
from twin.modbus.security import (
    TlsSettings,
    certificate_role,
    decode_der_string,
    encode_der_utf8,
    exposure_warning,
    is_loopback,
)
from twin.modbus.tcp import ModbusTcpServer
from twin.registers import Identity, RegisterImage, device_identification

ROLES = {"operator": "operator", "viewer": "viewer", "norole": None, "engineer": "engineer"}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"), ROLES)


@pytest.fixture
async def tls_server(tls_files: TlsFiles) -> AsyncIterator[tuple[ModbusTcpServer, list[object]]]:
    written: list[object] = []
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(60, 1.0, voltage_v=120.0, current_a=10.0))
    ident = Identity.from_config(core.config)
    ep = MeterEndpoint(
        RegisterImage.build(core.snapshot(), ident),
        device_identification(ident),
        lambda address, values: written.append((address, values)),
    )
    settings = TlsSettings(
        tls_files.server_cert,
        tls_files.server_key,
        tls_files.ca,
        write_roles=frozenset({"operator", "engineer"}),
    )
    server = ModbusTcpServer({1: ep}, "127.0.0.1", 0, tls=settings.policy())
    await server.start()
    yield server, written
    await server.close()


def client_context(files: TlsFiles, name: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(files.ca)
    if name is not None:
        c = files.client(name)
        ctx.load_cert_chain(c.cert, c.key)
    return ctx


async def pymodbus_session(
    port: int, ctx: ssl.SSLContext
) -> tuple[list[int] | None, bool | None, int | None]:
    """(registers 100..102, write refused?, exception code of the write)."""
    client = AsyncModbusTlsClient("127.0.0.1", sslctx=ctx, port=port, timeout=3, retries=0)
    try:
        if not await client.connect():
            return None, None, None
        rr = await client.read_holding_registers(100, count=3, device_id=1)
        wr = await client.write_register(201, 15, device_id=1)
        code = wr.exception_code if wr.isError() else None
        return list(rr.registers), wr.isError(), code
    finally:
        client.close()


@pytest.mark.parametrize(
    ("name", "may_write"),
    [("operator", True), ("engineer", True), ("viewer", False), ("norole", False)],
)
async def test_role_decides_read_only_or_read_write(
    tls_server: tuple[ModbusTcpServer, list[object]],
    tls_files: TlsFiles,
    name: str,
    may_write: bool,
) -> None:
    server, written = tls_server
    regs, refused, code = await pymodbus_session(server.port, client_context(tls_files, name))
    assert regs == [1, 2, 2]  # map version, model MMD, 2 elements
    if may_write:
        assert refused is False and written == [(201, [15])]
    else:
        assert refused is True and code == 1 and written == []


@pytest.mark.parametrize("name", [None, "stranger"])
async def test_no_or_foreign_client_certificate_is_refused(
    tls_server: tuple[ModbusTcpServer, list[object]], tls_files: TlsFiles, name: str | None
) -> None:
    server, _ = tls_server
    ctx = client_context(tls_files, name)
    with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=ctx)
        # TLS 1.3: the server's refusal of the client certificate arrives after the
        # handshake, on the first read
        writer.write(struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 100, 1))
        await asyncio.wait_for(reader.readexactly(11), 5)
    assert not server.connections


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl not installed")
async def test_openssl_s_client_speaks_mbap_over_tls(
    tls_server: tuple[ModbusTcpServer, list[object]], tls_files: TlsFiles
) -> None:
    server, _ = tls_server
    c = tls_files.client("viewer")
    request = struct.pack(">HHHBBHH", 0x1234, 0, 6, 1, 3, 100, 3)
    write = struct.pack(">HHHBBHH", 0x1235, 0, 6, 1, 6, 201, 15)
    argv = ["openssl", "s_client", "-quiet", "-connect", f"127.0.0.1:{server.port}"]
    argv += ["-CAfile", str(tls_files.ca), "-cert", str(c.cert), "-key", str(c.key)]

    def run() -> bytes:
        proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(request + write)
        proc.stdin.flush()
        out = proc.stdout.read(15 + 9)
        proc.kill()
        proc.communicate(timeout=10)
        return out

    out = await asyncio.to_thread(run)
    assert out[:15] == struct.pack(">HHHBBB3H", 0x1234, 0, 9, 1, 3, 6, 1, 2, 2)
    assert out[15:] == struct.pack(">HHHBBB", 0x1235, 0, 3, 1, 0x86, 1)  # viewer: 0x01


def test_role_extension_encoding(tls_files: TlsFiles) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    def der(name: str) -> bytes:
        cert = x509.load_pem_x509_certificate(tls_files.client(name).cert.read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)

    assert certificate_role(der("operator")) == "operator"
    assert certificate_role(der("norole")) is None
    assert certificate_role(b"not a certificate") is None
    long_role = "r" * 300
    assert decode_der_string(encode_der_utf8(long_role)) == long_role
    assert decode_der_string(encode_der_utf8("Bediener")) == "Bediener"
    assert decode_der_string(b"\x02\x01\x05") is None  # an INTEGER, not a string
    assert decode_der_string(b"\x0c\x05abc") is None  # length beyond the value


def test_tls_settings_name_the_bad_file(tls_files: TlsFiles, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"--tls-ca .*missing\.pem: no such file"):
        TlsSettings(tls_files.server_cert, tls_files.server_key, tmp_path / "missing.pem")
    junk = tmp_path / "junk.pem"
    junk.write_text("not PEM\n")
    with pytest.raises(ConfigError, match=r"--tls-cert .*junk\.pem"):
        TlsSettings(junk, tls_files.server_key, tls_files.ca).policy()
    with pytest.raises(ConfigError, match=r"--tls-ca .*junk\.pem"):
        TlsSettings(tls_files.server_cert, tls_files.server_key, junk).policy()


def test_exposure_warning_only_beyond_loopback_with_writes_and_no_tls() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("") and not is_loopback("0.0.0.0") and not is_loopback("plant-gw")
    on = {"allow_writes": True, "allow_energy_reset": False}
    assert exposure_warning("127.0.0.1", **on, tls=False) is None
    assert exposure_warning("0.0.0.0", **on, tls=True) is None
    assert (
        exposure_warning("0.0.0.0", allow_writes=False, allow_energy_reset=False, tls=False) is None
    )
    text = exposure_warning("", allow_writes=True, allow_energy_reset=True, tls=False)
    assert text is not None and "every interface" in text and "writes and energy reset" in text
    assert "0.0.0.0" in (exposure_warning("0.0.0.0", **on, tls=False) or "")


async def test_minimeter_run_serves_tls_and_warns_only_without_it(
    tls_files: TlsFiles, start_twin: Callable[..., TwinProcess]
) -> None:
    tp = start_twin(
        "--tls-cert", str(tls_files.server_cert), "--tls-key", str(tls_files.server_key),
        "--tls-ca", str(tls_files.ca), "--allow-writes", "--host", "0.0.0.0",
    )  # fmt: skip
    regs, refused, code = await pymodbus_session(tp.port, client_context(tls_files, "viewer"))
    assert regs == [1, 2, 2] and refused is True and code == 1
    regs, refused, _ = await pymodbus_session(tp.port, client_context(tls_files, "operator"))
    assert regs == [1, 2, 2] and refused is False
    _, _, err = tp.stop()
    assert "warning" not in err  # TLS on: no exposure warning
    plain = start_twin("--allow-writes", "--host", "0.0.0.0")
    _, _, err = plain.stop()
    assert "warning: listening on 0.0.0.0 with writes on and no TLS" in err


def test_tls_options_go_together(start_twin: Callable[..., TwinProcess]) -> None:
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "twin", "run", "--no-state", "--tls-cert", "x.pem"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "--tls-cert, --tls-key and --tls-ca go together" in out.stderr
    assert "Traceback" not in out.stderr
