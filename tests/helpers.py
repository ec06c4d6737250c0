"""Shared test helpers (imported by tests; conftest.py only holds fixtures).

``TwinProcess`` is a ``python -m twin run`` subprocess; ``rtu_frame`` appends the
Modbus RTU CRC and ``rtu_reply`` collects an answer on a pty until the line goes quiet.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TwinProcess:
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> tuple[int, str, str]:
        """Signal the twin and wait; returns (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out, err


def run_args(args: tuple[str, ...], port: int) -> list[str]:
    argv = [sys.executable, "-m", "twin", "run", *args]
    if not {"--port", "--no-tcp", "--fleet"} & set(args):  # a fleet file has its own ports
        argv += ["--port", str(port)]
    if "--state-dir" not in args and "--no-state" not in args:
        argv.append("--no-state")
    return argv


def wait_for_line(proc: subprocess.Popen[str], what: str, timeout_s: float = 15.0) -> str:
    """Read stdout lines until one contains ``what``; fails with stderr on exit/timeout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if what in line:
            return line
        if not line and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"twin exited {proc.returncode} before {what!r}: {err}")
    proc.kill()
    raise AssertionError(f"no {what!r} line within {timeout_s} s")


def rtu_frame(frame: bytes) -> bytes:
    """``frame`` (address, PDU) with its Modbus RTU CRC appended."""
    # Imported here: most tests never touch RTU, and pymodbus is slow to import.
    from pymodbus.framer.rtu import FramerRTU

    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


async def rtu_reply(master: int, timeout_s: float = 1.0) -> bytes:
    """What arrives on ``master`` until 20 ms of quiet after the first byte, or timeout."""
    loop = asyncio.get_running_loop()
    data, deadline = b"", loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            data += os.read(master, 512)
        except BlockingIOError:
            if data:
                await asyncio.sleep(0.02)  # let the rest of the frame arrive
                try:
                    data += os.read(master, 512)
                except BlockingIOError:
                    return data
            await asyncio.sleep(0.01)
    return data


# ------------------------------------------------------------ energy oracle

#: Datasheet: the meter runs from L1 or L2 at 102..138 V; below that on both lines it
#: is off and registers nothing. Stated here again on purpose: an oracle must not
#: share the implementation (or the constants) it checks.
ORACLE_SUPPLY_MIN_V = 102.0


@dataclass(frozen=True)
class ImpliedEnergy:
    """What a profile implies an ideal meter registers (sum_then_clamp)."""

    l1_wh: float  # signed: negative when the line exports
    l2_wh: float
    total_wh: float  # integral of max(P1 + P2, 0) while powered
    peak_w: float  # largest P1 + P2 while powered (0 if none above)


def element_power_w(block: Any) -> Any:
    """(2, n) real power per element of a SampleBlock, from complex phasors."""
    import numpy as np

    n = block.n
    theta = np.radians(np.array(block.line_angle_deg))[:, None]
    phi = np.arccos(np.clip(block.cos_phi, -1.0, 1.0)) * np.where(block.leading, -1.0, 1.0)
    v = block.voltage_v * np.exp(1j * theta)
    i_line = block.current_a * np.exp(1j * (theta - phi))  # current lags by phi
    lines = np.broadcast_to(np.array([[0], [1]]) if block.ct_line is None else block.ct_line,
                            (2, n))  # fmt: skip
    i_seen = np.take_along_axis(np.broadcast_to(i_line, (2, n)), lines, axis=0)
    if block.ct_reversed is not None:
        i_seen = np.where(block.ct_reversed, -i_seen, i_seen)
    return np.real(v * np.conj(i_seen))


def implied_energy(
    sampler: Any, dt_s: float, t0_s: float = 0.0, duration_s: float | None = None
) -> ImpliedEnergy:
    """Plain numpy integration of each element's Re(V · conj(I)) over the samples.

    Independent of the core: phasors in complex numbers (element k: its line's
    voltage at the service's angle, the current of the line its CT is on, negated
    when the CT is reversed), no starting current, no accuracy curve, no rounding to
    microjoules; only the supply threshold. Tests compare the core against it.
    """
    import numpy as np

    span_s = sampler.duration_s if duration_s is None else duration_s
    dt_us = round(dt_s * 1e6)
    total_n = round(span_s * 1e6) // dt_us
    chunk = max(1, 86_400_000_000 // dt_us)
    e1 = e2 = total = peak = 0.0
    for start in range(0, total_n, chunk):
        m = min(chunk, total_n - start)
        block = sampler.block(t0_s + start * dt_us / 1e6, dt_s, m)
        p = element_power_w(block)
        powered = block.voltage_v.max(axis=0) >= ORACLE_SUPPLY_MIN_V
        p = np.where(powered, p, 0.0)
        net = p[0] + p[1]
        e1 += float(p[0].sum())
        e2 += float(p[1].sum())
        total += float(np.maximum(net, 0.0).sum())
        peak = max(peak, float(net.max()))
    hours = dt_us / 1e6 / 3600.0
    return ImpliedEnergy(e1 * hours, e2 * hours, total * hours, peak)


# ------------------------------------------------------------ the HIL suite


def run_hil_suite(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``python -m pytest hil_tests ARGS`` from the repo; the result and its JUnit XML root."""
    import xml.etree.ElementTree as ET

    junit = tmp_path / "hil.xml"
    cmd = [sys.executable, "-m", "pytest", "hil_tests", "-q", "-p", "no:cacheprovider"]
    cmd += ["--junitxml", str(junit), *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    return result, ET.parse(junit).getroot()


def hil_outcomes(root: Any) -> dict[str, tuple[str, str]]:
    """Each test case's outcome (passed, failure, error, skipped) and message."""
    out = {}
    for case in root.iter("testcase"):
        name = case.get("name", "")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        message = next((c.get("message", "") for c in case if c.tag in kinds), "")
        out[name] = (kinds[0] if kinds else "passed", message)
    return out
