"""Shared fixtures: free TCP ports, `minimeter run` subprocesses, ptys for the RTU line.

``start_twin(*args)`` starts ``python -m twin run --port <free> --no-state ...``
(``--no-state`` only when no ``--state-dir`` is given), waits for its "serving" line
and returns a :class:`TwinProcess`; every process started is stopped at teardown.
RTU tests talk raw frames on a pty: the ``pty`` fixture gives the master side
(non-blocking) and the device path a twin opens; ``rtu_frame`` appends the CRC and
``rtu_reply`` collects an answer until the line goes quiet (``b""`` on silence).

The teardown watchdog: pytest-timeout (and pytest's ``faulthandler_timeout``) cancel
their timer in ``pytest_exception_interact``, i.e. as soon as a test *fails*, so a
failing test's teardown ran with no timeout at all and a task that would not end when
pytest-asyncio cancelled it hung the run for ever. Teardown now gets the configured
``timeout`` again; past it every thread's stack is dumped and the run exits 1.
"""

from __future__ import annotations

import faulthandler
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.helpers import REPO, TwinProcess, find_free_port, run_args, wait_for_line

# Hypothesis's per-example deadline is a wall-clock assertion: on a shared machine it
# fails tests for the load of other processes, not for the code. Off for every test.
settings.register_profile("no-deadline", deadline=None)
settings.load_profile("no-deadline")

#: A copy of the real stderr, taken before tests capture it: where the watchdog writes.
WATCHDOG_STDERR = pytest.StashKey[int]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[WATCHDOG_STDERR] = os.dup(sys.stderr.fileno())


def pytest_unconfigure(config: pytest.Config) -> None:
    os.close(config.stash[WATCHDOG_STDERR])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    timeout_s = float(item.config.getini("timeout") or 0)
    if timeout_s <= 0:
        return (yield)
    faulthandler.dump_traceback_later(timeout_s, exit=True, file=item.config.stash[WATCHDOG_STDERR])
    try:
        return (yield)
    finally:
        faulthandler.cancel_dump_traceback_later()


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
