"""HTTP stream load: 50 open live streams on a fleet of 100 meters while a Modbus client
polls; target Modbus p99 <= 20 ms.

Starts ``minimeter run --no-state --meters 100 --speed 60 --http PORT`` as a subprocess,
opens 50 Server-Sent-Events streams like the panel's (``serial=<meter i>&fleet=1``, at the
panel's default interval, 0.5 s; the stream readers run in a second process so they do not
share the measuring loop), then times FC03 40-register reads of unit ids round the fleet
for ``DURATION_S`` on one connection. Prints p50/p99/max, frames received, and the
twin's own stream counters from /metrics. Exit status 1 when p99 > 20 ms.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

STREAMS = int(os.environ.get("BENCH_HTTP_STREAMS", "50"))  # 0: the baseline
METERS = 100
DURATION_S = 15.0
INTERVAL_S = float(os.environ.get("BENCH_HTTP_INTERVAL_S", "0.5"))  # the panel's default
TARGET_P99_MS = 20.0
REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _stream(http_port: int, serial_index: int, stop_at: float, frames: list[int]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", http_port)
    serial = f"MM{1 + serial_index:08d}"
    path = f"/api/stream?serial={serial}&fleet=1&interval_s={INTERVAL_S}"
    writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    n = 0
    while time.monotonic() < stop_at:
        try:
            line = await asyncio.wait_for(reader.readline(), 1.0)
        except TimeoutError:
            continue
        if not line:
            break
        if line.startswith(b"event: meter"):
            n += 1
    frames.append(n)
    writer.close()


def _streams_main(http_port: int, seconds: float, out: multiprocessing.Queue[int]) -> None:
    async def run() -> None:
        frames: list[int] = []
        stop_at = time.monotonic() + seconds
        await asyncio.gather(
            *(_stream(http_port, i % METERS, stop_at, frames) for i in range(STREAMS))
        )
        out.put(sum(frames))

    asyncio.run(run())


async def _modbus_latencies(port: int, seconds: float) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out: list[float] = []
    tid = 0
    stop_at = time.monotonic() + seconds
    while time.monotonic() < stop_at:
        tid = (tid + 1) & 0xFFFF
        unit = 1 + tid % METERS
        frame = struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, 0, 40)
        t0 = time.perf_counter()
        writer.write(frame)
        head = await reader.readexactly(7)
        await reader.readexactly(struct.unpack(">H", head[4:6])[0] - 1)
        out.append(time.perf_counter() - t0)
        await asyncio.sleep(0.001)  # a poller, not a flood
    writer.close()
    return out


def main() -> int:
    modbus_port, http_port = _free_port(), _free_port()
    argv = [
        sys.executable, "-m", "twin", "run", "--no-state", "--meters", str(METERS),
        "--speed", "60", "--port", str(modbus_port), "--http", str(http_port),
        "--http-max-streams", "500",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        while "serving" not in proc.stdout.readline():
            if proc.poll() is not None:
                raise SystemExit("the twin did not start")
        frames_q: multiprocessing.Queue[int] = multiprocessing.Queue()
        streams = multiprocessing.Process(
            target=_streams_main, args=(http_port, DURATION_S + 3.0, frames_q)
        )
        streams.start()
        time.sleep(2.0)  # every stream open
        lat = asyncio.run(_modbus_latencies(modbus_port, DURATION_S))
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()
        frames = frames_q.get(timeout=30)
        streams.join()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    lat_ms = sorted(x * 1000 for x in lat)
    p50 = statistics.median(lat_ms)
    p99 = lat_ms[int(len(lat_ms) * 0.99) - 1]
    clients = [ln for ln in metrics.splitlines() if ln.startswith("minimeter_http_stream_clients ")]
    lag = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("minimeter_http_stream_publish_lag_seconds_")
    ]
    print(f"{STREAMS} streams on {METERS} meters, {len(lat_ms)} Modbus reads in {DURATION_S:g} s")
    print(f"modbus p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {lat_ms[-1]:.2f} ms")
    print(f"target p99 <= {TARGET_P99_MS:g} ms; stream interval {INTERVAL_S:g} s")
    print(f"meter frames received by the streams: {frames} ({frames / DURATION_S:.0f}/s)")
    print("\n".join(clients + [ln for ln in lag if "_sum" in ln or "_count" in ln]))
    return 0 if p99 <= TARGET_P99_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
