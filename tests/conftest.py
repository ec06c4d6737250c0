"""Shared fixtures: free TCP ports, `minimeter run` subprocesses, ptys for the RTU line.

``start_twin(*args)`` starts ``python -m twin run --port <free> --no-state ...``
(``--no-state`` only when no ``--state-dir`` is given), waits for its "serving" line
and returns a :class:`TwinProcess`; every process started is stopped at teardown.
RTU tests talk raw frames on a pty: the ``pty`` fixture gives the master side
(non-blocking) and the device path a twin opens; ``rtu_frame`` appends the CRC and
``rtu_reply`` collects an answer until the line goes quiet (``b""`` on silence).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO, TwinProcess, find_free_port, run_args, wait_for_line


@pytest.fixture
def free_port() -> int:
    return find_free_port()


@pytest.fixture
def start_twin() -> Iterator[Callable[..., TwinProcess]]:
    started: list[TwinProcess] = []

    def start(*args: str) -> TwinProcess:
        port = find_free_port()
        if "--port" in args:
            port = int(args[args.index("--port") + 1])
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(
            run_args(args, port),
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
