"""HTTP stream load: 50 open live streams on a fleet of 100 meters while a Modbus client
polls; target Modbus p99 <= 20 ms.

Starts ``minimeter run --no-state --meters 100 --speed 60 --http PORT`` as a subprocess,
opens 50 Server-Sent-Events streams like the panel's (``serial=<meter i>&fleet=1``, at the
panel's default interval, 0.5 s; the stream readers run in a second process so they do not
share the measuring loop), and times FC03 40-register reads of unit ids round the fleet for
``DURATION_S`` on one connection, in three phases on the same twin: without streams
(baseline), with the 50 streams open, without streams again. Prints p50/p99/max of each,
the p99 ratio streams/baseline (both baselines pooled), and the twin's own stream
counters from /metrics. Exit status 1 when the p99 with streams is > 20 ms.
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

STREAMS = int(os.environ.get("BENCH_HTTP_STREAMS", "50"))
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


def _metric_lines(http_port: int, *prefixes: str) -> list[str]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics").read().decode()
    return [ln for ln in text.splitlines() if ln.startswith(prefixes)]


def _wait_for_clients(http_port: int, n: int, timeout_s: float = 20.0) -> None:
    deadline, line = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        line = _metric_lines(http_port, "minimeter_http_stream_clients ")
        if line and float(line[0].split()[1]) >= n:
            return
        time.sleep(0.2)
    raise SystemExit(f"only {line} of {n} streams opened")


def _summary(name: str, lat_s: list[float]) -> tuple[float, float, float]:
    ms = sorted(x * 1000 for x in lat_s)
    p50, p99 = statistics.median(ms), ms[max(0, int(len(ms) * 0.99) - 1)]
    print(
        f"{name:<22} {len(ms):>6} reads  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {ms[-1]:6.2f} ms"
    )
    return p50, p99, ms[-1]


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
        # The same twin, the same client: baseline, with the streams, baseline again
        # (the machine is shared: two baselines bracket the noise).
        before = asyncio.run(_modbus_latencies(modbus_port, DURATION_S))
        frames_q: multiprocessing.Queue[int] = multiprocessing.Queue()
        streams = multiprocessing.Process(
            target=_streams_main, args=(http_port, DURATION_S + 30.0, frames_q)
        )
        streams.start()
        _wait_for_clients(http_port, STREAMS)
        during = asyncio.run(_modbus_latencies(modbus_port, DURATION_S))
        metrics = _metric_lines(
            http_port, "minimeter_http_stream_clients ", "minimeter_http_stream_publish_lag"
        )
        streams.terminate()  # the readers' own deadline is only a safety net
        streams.join()
        after = asyncio.run(_modbus_latencies(modbus_port, DURATION_S))
        frames = _metric_lines(http_port, "minimeter_http_stream_frames_total")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"{STREAMS} streams (interval {INTERVAL_S:g} s) on {METERS} meters; "
          f"FC03 x40 reads, {DURATION_S:g} s per phase")  # fmt: skip
    _summary("baseline (before)", before)
    _summary("baseline (after)", after)
    _, base_p99, _ = _summary("baseline (both)", before + after)
    _, p99, _ = _summary(f"with {STREAMS} streams", during)
    print(f"p99 ratio streams/baseline: {p99 / base_p99:.2f}; target p99 <= {TARGET_P99_MS:g} ms")
    print("\n".join(m for m in metrics + frames if "bucket" not in m))
    return 0 if p99 <= TARGET_P99_MS else 1


if __name__ == "__main__":
    raise SystemExit(main())
