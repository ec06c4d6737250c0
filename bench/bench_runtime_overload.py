"""An overloaded twin stays responsive: read latency while the core cannot keep up.

A twin on one port whose clock asks for 1e8 meter seconds per wall second (far more
than any core steps) steps as much as its tick budget allows and lags behind; this
measures how long Modbus reads take meanwhile (``--reads`` FC03 reads of 10 registers,
30 ms apart, after 0.4 s of stepping) and how long ``Twin.stop()`` takes. The claims
the runtime makes (reads answered within 0.1 s while stepping, stop within 0.5 s) are
checked here, not in timed unit tests:

    .venv/bin/python bench/bench_runtime_overload.py [--reads 200]

Exits 1 if the slowest read takes >= 100 ms or stop takes >= 0.5 s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time

from twin.modbus.client import MeterClient
from twin.runtime import Twin, TwinConfig


class RunawayClock:
    """A ticking clock far faster than any core: 1e8 meter seconds per wall second."""

    ticks = True
    speed = 1e8

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return (time.monotonic() - self._t0) * self.speed


async def run(reads: int) -> tuple[list[float], float, float]:
    twin = Twin(TwinConfig(port=0, speed=1.0), clock=RunawayClock())
    await twin.start()
    try:
        async with MeterClient(port=twin.port, timeout_s=5.0) as client:
            await asyncio.sleep(0.4)  # several ticks' worth of stepping under way
            latencies = []
            for _ in range(reads):
                t0 = time.perf_counter()
                await client.read_registers(0, 10)
                latencies.append(time.perf_counter() - t0)
                await asyncio.sleep(0.03)
        lag_s = twin.lag_s
    finally:
        t0 = time.perf_counter()
        await twin.stop()
        stop_s = time.perf_counter() - t0
    return latencies, stop_s, lag_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=200)
    args = parser.parse_args()
    latencies, stop_s, lag_s = asyncio.run(run(args.reads))
    ms = sorted(x * 1e3 for x in latencies)
    p99 = ms[min(len(ms) - 1, round(0.99 * (len(ms) - 1)))]
    print(
        f"reads {len(ms)}: p50 {statistics.median(ms):.2f} ms, p99 {p99:.2f} ms, "
        f"max {ms[-1]:.2f} ms; stop {stop_s * 1e3:.1f} ms; meter time lag {lag_s:.3g} s"
    )
    return 0 if ms[-1] < 100 and stop_s < 0.5 else 1


if __name__ == "__main__":
    sys.exit(main())
