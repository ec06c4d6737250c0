"""`minimeter run` as a subprocess, read by real clients: mbpoll (C, libmodbus) over TCP
and over RTU on a socat pty pair, and pymodbus. Constant profiles with ``--until`` freeze
the meter at a known point so every client can be compared with the profile integral."""

from __future__ import annotations

import asyncio
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import REPO, TwinProcess, implied_energy
from twin.loadprofile import load_profile
from twin.modbus.client import MeterClient, decode_string

pytestmark = pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed")

# L1 1200 W at PF 1, L2 at PF 0.4: 480 W and the "PF below range" status (bit 7, error 7)
LOW_PF = """\
schema: 1
name: low-pf
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 0.4}
"""
Start = Callable[..., TwinProcess]


@pytest.fixture
def profile(tmp_path: Path) -> str:
    path = tmp_path / "low-pf.yaml"
    path.write_text(LOW_PF)
    return str(path)


def mbpoll(*args: str) -> list[str]:
    """Values mbpoll printed, in order (0-based references)."""
    out = subprocess.run(
        ["mbpoll", "-1", "-0", "-o", "2", *args], capture_output=True, text=True, timeout=20
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return [line.split(":", 1)[1].strip() for line in out.stdout.splitlines() if line[:1] == "["]


def tcp(port: int, *args: str) -> list[str]:
    return mbpoll("-p", str(port), *args, "127.0.0.1")


async def _wait_frozen(port: int, energy_wh: int, timeout_s: float = 20.0) -> None:
    async with MeterClient(port=port) as c:
        for _ in range(int(timeout_s / 0.05)):
            if await c.read_uint(0, 4) == energy_wh:
                return
            await asyncio.sleep(0.05)
    raise AssertionError(f"energy never reached {energy_wh} Wh")


def _hour(start: Start, profile: str, *extra: str) -> TwinProcess:
    return start("--profile", profile, "--speed", "3600", "--until", "3600", *extra)


async def test_mbpoll_reads_what_the_meter_registered(start_twin: Start, profile: str) -> None:
    integral = implied_energy(load_profile(profile).sampler(None), 1.0, 0.0, 3600.0).total_wh
    twin = _hour(start_twin, profile)
    await _wait_frozen(twin.port, round(integral))  # 1 h at x3600: the profile's integral
    energy = [int(v) for v in tcp(twin.port, "-r", "0", "-c", "4")]
    assert (energy[0] << 48 | energy[1] << 32 | energy[2] << 16 | energy[3]) == 1680
    assert abs(1680 - integral) <= 1
    assert float(tcp(twin.port, "-t", "4:float", "-B", "-r", "20")[0]) == pytest.approx(1680)
    assert float(tcp(twin.port, "-t", "3:float", "-B", "-r", "22")[0]) == pytest.approx(1200)
    bits = tcp(twin.port, "-t", "1", "-r", "0", "-c", "16")
    assert [i for i, b in enumerate(bits) if b == "1"] == [7]  # PF below 0.5
    assert tcp(twin.port, "-r", "52")[0] == "7"  # error code on the LCD
    serial = [int(v) for v in tcp(twin.port, "-r", "108", "-c", "16")]
    assert decode_string(serial) == "MM00000001"
    async with MeterClient(port=twin.port) as c:  # the same values over pymodbus
        assert await c.read_registers(0, 4) == energy
        assert await c.read_registers(108, 16) == serial
        assert (await c.device_identification())[1] == b"MMD-200A"
    code, _, err = twin.stop(signal.SIGINT)
    assert code == 0, err
    assert "stopped" in err


async def test_mbpoll_little_word_order(start_twin: Start, profile: str) -> None:
    twin = _hour(start_twin, profile, "--word-order", "little")
    await _wait_frozen(twin.port, 1680 << 48)  # the client reads big: words come reversed
    words = [int(v) for v in tcp(twin.port, "-r", "0", "-c", "4")]
    assert words == [1680, 0, 0, 0]
    assert float(tcp(twin.port, "-t", "4:float", "-r", "20")[0]) == pytest.approx(1680)


def test_mbpoll_rtu_over_a_pty_pair(
    start_twin: Start, profile: str, pty_pair: tuple[str, str]
) -> None:
    twin_side, client_side = pty_pair
    twin = _hour(start_twin, profile, "--serial", twin_side, "--baud", "38400", "--parity", "E")
    assert f"rtu {twin_side} 38400 E81" in twin.first_line
    asyncio.run(_wait_frozen(twin.port, 1680))
    rtu = ("-m", "rtu", "-a", "1", "-b", "38400", "-P", "even")
    energy = mbpoll(*rtu, "-r", "0", "-c", "4", client_side)
    assert energy == tcp(twin.port, "-r", "0", "-c", "4") == ["0", "0", "0", "1680"]
    assert float(mbpoll(*rtu, "-t", "4:float", "-B", "-r", "20", client_side)[0]) == 1680.0
    assert mbpoll(*rtu, "-t", "0", "-r", "0", "-c", "4", client_side) == ["0", "1", "1", "1"]
    out = subprocess.run(  # outside the blocks: exception 02 over RTU too
        ["mbpoll", "-1", "-0", *rtu, "-r", "1000", client_side], capture_output=True, text=True
    )
    assert "Illegal data address" in out.stdout + out.stderr


async def test_restart_continues_energy_and_counts(
    start_twin: Start, profile: str, tmp_path: Path
) -> None:
    state = ("--state-dir", str(tmp_path / "state"), "--speed", "3600", "--until", "1800")
    first = start_twin("--profile", profile, *state)
    await _wait_frozen(first.port, 840)
    async with MeterClient(port=first.port) as c:
        counts = await c.read_registers(56, 12)
    code, _, err = first.stop(signal.SIGTERM)
    assert code == 0, err
    second = start_twin("--profile", profile, *state)
    async with MeterClient(port=second.port) as c:
        # (read before the first tick moved it, or after: either way nothing went back)
        assert await c.read_uint(0, 4) >= 840
    await _wait_frozen(second.port, 1680)  # continues: nothing lost, nothing counted twice
    async with MeterClient(port=second.port) as c:
        again = await c.read_registers(56, 12)
    pulses_10 = lambda regs: regs[0] << 16 | regs[1]  # noqa: E731
    assert pulses_10(counts) == 84 and pulses_10(again) == 168
    assert again[10:12] == counts[10:12] == [0, 1]  # power_up_count unchanged


def test_bad_options_and_busy_port_are_one_line_errors(start_twin: Start, profile: str) -> None:
    twin = start_twin("--profile", profile)
    cases = [
        ["--port", str(twin.port)],
        ["--unit", "300"],
        ["--model", "XYZ-1"],
        ["--serial", "/nonexistent/tty", "--no-tcp"],
        ["--profile", "no-such-profile"],
    ]
    for args in cases:
        run = [sys.executable, "-m", "twin", "run", "--no-state", "--profile", profile, *args]
        out = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=30)
        assert out.returncode == 1, (args, out.stderr)
        lines = [ln for ln in out.stderr.splitlines() if "error" in ln.lower()]
        assert len(lines) == 1 and "Traceback" not in out.stderr, out.stderr
    busy = subprocess.run(
        [sys.executable, "-m", "twin", "run", "--no-state", "--port", str(twin.port)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert f"127.0.0.1:{twin.port} is in use; choose another --port" in busy.stderr


def test_raw_fc03_frame_matches_libmodbus_layout(start_twin: Start, profile: str) -> None:
    """A raw socket request, as a PLC stack would send it (no client library)."""
    import socket

    twin = _hour(start_twin, profile)
    asyncio.run(_wait_frozen(twin.port, 1680))
    with socket.create_connection(("127.0.0.1", twin.port), timeout=2) as s:
        s.sendall(struct.pack(">HHHBBHH", 0x1234, 0, 6, 1, 3, 0, 4))
        reply = s.recv(256)
    assert reply == struct.pack(">HHHBBB", 0x1234, 0, 11, 1, 3, 8) + struct.pack(">Q", 1680)
