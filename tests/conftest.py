"""Shared fixtures: free TCP ports, `minimeter run` subprocesses, ptys for the RTU line.

``start_twin(*args)`` starts ``python -m twin run --port <free> --no-state ...``
(``--no-state`` only when no ``--state-dir`` is given), waits for its "serving" line
and returns a :class:`TwinProcess`; every process started is stopped at teardown.
RTU tests talk raw frames on a pty: the ``pty`` fixture gives the master side
(non-blocking) and the device path a twin opens; ``rtu_frame`` appends the CRC and
``rtu_reply`` collects an answer until the line goes quiet (``b""`` on silence).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def free_port() -> int:
    return find_free_port()


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


def _run_args(args: tuple[str, ...], port: int) -> list[str]:
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


@pytest.fixture
def start_twin() -> Iterator[Callable[..., TwinProcess]]:
    started: list[TwinProcess] = []

    def start(*args: str) -> TwinProcess:
        port = find_free_port()
        if "--port" in args:
            port = int(args[args.index("--port") + 1])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            _run_args(args, port),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        line = wait_for_line(proc, "serving")
        tp = TwinProcess(proc, port, line)
        started.append(tp)
        return tp

    yield start
    for tp in started:
        if tp.proc.poll() is None:
            tp.proc.kill()
            tp.proc.communicate(timeout=10)


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two linked ptys from socat: (twin side, client side)."""
    socat = shutil.which("socat")
    if socat is None:
        pytest.skip("socat not installed (make system-deps)")
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    proc = subprocess.Popen(
        [socat, "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 5
    while not (a.exists() and b.exists()):
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise AssertionError("socat did not create the pty pair")
        time.sleep(0.02)
    yield str(a), str(b)
    proc.terminate()
    proc.wait(timeout=5)


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """A pty: (master fd, non-blocking; the slave's device path, for SerialSettings)."""
    master, slave = os.openpty()
    os.set_blocking(master, False)
    yield master, os.ttyname(slave)
    os.close(master)
    os.close(slave)


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
