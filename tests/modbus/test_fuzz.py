"""Fuzzing the Modbus servers (TCP, TLS, RTU): random and mutated frames, every answer
checked, a well-formed canary answered right during and after, memory flat.

The server is a separate process (``tests.modbus.fuzz_server``: a live meter behind the
twin's TCP/TLS/RTU server) so its resident memory is measured alone. CI runs
``MM_FUZZ_FRAMES`` (3,000) frames per transport; ``make soak`` runs 100,000 and
``docs/reliability.md`` quotes its figures.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO
from tests.modbus.fuzz import frames_wanted, fuzz_tcp
from tests.modbus.fuzz_rtu import fuzz_rtu
from tests.modbus.tlscerts import make_tls_files

RSS_GROWTH_MAX_KB = 20_000  # flat: the answer memo and allocator arenas, not per frame
# The shortest quiet gap after a frame only a silence ends (the server's silence is
# 2 ms); the run lengthens it while the server is not scheduled in time.
RTU_GAP_S = 0.004


def start_server(*args: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.modbus.fuzz_server", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("serving"), proc.stderr.read() if proc.stderr else line
    return proc, int(line.split()[1])


@pytest.fixture
def servers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        proc.terminate()
        proc.communicate(timeout=10)


def assert_flat(rss_kb: list[int]) -> None:
    assert len(rss_kb) >= 2
    assert rss_kb[-1] - rss_kb[0] < RSS_GROWTH_MAX_KB, rss_kb


@pytest.mark.parametrize("transport", ["tcp", "tls"])
async def test_fuzz_tcp(
    transport: str, servers: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    ctx: ssl.SSLContext | None = None
    args: tuple[str, ...] = ()
    if transport == "tls":
        files = make_tls_files(tmp_path, {"operator": "operator"})
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(files.ca)
        client = files.client("operator")
        ctx.load_cert_chain(client.cert, client.key)
        args = ("--tls-dir", str(tmp_path))
    proc, port = start_server(*args)
    servers.append(proc)

    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", port, ssl=ctx)

    figures = await fuzz_tcp(connect, proc.pid, transport, frames_wanted(), seed=1500)
    print(figures.report())
    assert proc.poll() is None  # never died
    assert figures.frames >= frames_wanted() and figures.canaries > 0
    assert figures.closed_by_server > 0
    assert_flat(figures.rss_kb)


async def test_fuzz_rtu(servers: list[subprocess.Popen[str]], pty: tuple[int, str]) -> None:
    master, device = pty
    proc, _ = start_server("--serial", device)
    servers.append(proc)
    frames = frames_wanted()
    figures = await fuzz_rtu(master, proc.pid, frames, seed=1501, gap_s=RTU_GAP_S)
    print(figures.report())
    assert proc.poll() is None
    assert figures.silent_ok > 0 and figures.answers > 0 and figures.canaries > 0
    assert_flat(figures.rss_kb)
