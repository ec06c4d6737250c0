"""Modbus TCP under load and attack: p99 of well-behaved pollers, the twin's memory.

Starts ``python -m twin run --no-state`` on a free port and measures, from this
process (asyncio clients, FC03 of 40 registers at 0, one outstanding request each):

1. baseline: 8 pollers alone;
2. 500 simultaneous connections, all polling;
3. 8 pollers beside a half-open client (half a header, then nothing), a
   byte-per-second client, a client that pipelines without end and never reads its
   answers, and a connection storm (connect, one request, close, as fast as it can).

Prints p50/p99 per scenario and the twin's resident memory before and after; the
figures go to ``docs/reliability.md``. Not a pass/fail test.

    .venv/bin/python bench/bench_modbus_load.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
REQUEST = struct.pack(">HHHBBHH", 1, 0, 6, 1, 3, 0, 40)
ANSWER_BYTES = 9 + 80


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def poller(port: int, n: int, pause_s: float, out: list[float]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            writer.write(REQUEST)
            await asyncio.wait_for(reader.readexactly(ANSWER_BYTES), 30)
            out.append(time.perf_counter() - t0)
            if pause_s:
                await asyncio.sleep(pause_s)
    finally:
        writer.close()


def summary(name: str, lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100)
    return f"{name:<44} n={len(lat):>6}  p50 {q[49] * 1e6:>7.0f} us  p99 {q[98] * 1e6:>7.0f} us"


async def half_open(port: int, stop: asyncio.Event) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST[:5])
    await stop.wait()
    writer.close()


async def byte_per_second(port: int, stop: asyncio.Event) -> None:
    while not stop.is_set():  # the twin closes it (frame timeout): it comes back
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            for byte in REQUEST * 100:
                writer.write(bytes((byte,)))
                await writer.drain()
                await asyncio.sleep(1.0)
                if stop.is_set():
                    break
            writer.close()
        except (ConnectionError, OSError):
            await asyncio.sleep(0.1)


async def never_reads(port: int, stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    burst = REQUEST * 2000
    with contextlib.suppress(OSError):
        while not stop.is_set():
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, burst), 0.5)
            except TimeoutError:
                continue  # the twin stopped reading us: backpressure
    sock.close()


async def storm(port: int, stop: asyncio.Event, counter: list[int]) -> None:
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)
            await asyncio.wait_for(reader.readexactly(ANSWER_BYTES), 5)
            writer.close()
            counter[0] += 1
        except (ConnectionError, OSError, TimeoutError, asyncio.IncompleteReadError):
            await asyncio.sleep(0.01)


async def run(port: int, pid: int, requests: int) -> None:
    print(f"twin RSS at start: {rss_kb(pid) / 1024:.1f} MB")
    lat: list[float] = []
    await asyncio.gather(*(poller(port, requests, 0, lat) for _ in range(8)))
    print(summary("baseline: 8 pollers", lat))

    lat = []
    await asyncio.gather(*(poller(port, 20, 0.01, lat) for _ in range(500)))
    print(summary("500 simultaneous connections polling", lat))
    print(f"twin RSS after 500 connections: {rss_kb(pid) / 1024:.1f} MB")

    stop, storms = asyncio.Event(), [0]
    adversaries = [
        asyncio.create_task(half_open(port, stop)),
        asyncio.create_task(byte_per_second(port, stop)),
        asyncio.create_task(never_reads(port, stop)),
        asyncio.create_task(storm(port, stop, storms)),
    ]
    await asyncio.sleep(1.0)  # let the flood fill its socket buffers
    lat = []
    t0 = time.monotonic()
    await asyncio.gather(*(poller(port, requests, 0, lat) for _ in range(8)))
    elapsed = time.monotonic() - t0
    peak = rss_kb(pid)
    stop.set()
    for task in adversaries:
        task.cancel()
    await asyncio.gather(*adversaries, return_exceptions=True)
    print(summary("8 pollers + half-open, 1 B/s, never-reads, storm", lat))
    print(f"storm connections completed meanwhile: {storms[0]} in {elapsed:.1f} s")
    print(f"twin RSS during the attack: {peak / 1024:.1f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=2000, help="requests per poller (2000)")
    args = ap.parse_args()
    port = free_port()
    argv = [sys.executable, "-m", "twin", "run", "--no-state", "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--max-connections", "1000"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "serving" not in line:
            print(f"twin did not start: {line}", file=sys.stderr)
            return 1
        asyncio.run(run(port, proc.pid, args.requests))
        alive = proc.poll() is None
        print(f"twin still running: {alive}")
        return 0 if alive else 1
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
