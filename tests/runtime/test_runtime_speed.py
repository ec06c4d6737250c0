"""A twin asked for more samples than the core can step stays responsive: it answers
requests, stops on stop() and SIGTERM, and lets meter time lag behind the clock;
a tick steps in bounded chunks and yields to the event loop; speeds no core could
sustain, and seeds out of range, are refused at the boundary in one line. How fast
it answers and stops meanwhile is measured in bench/bench_runtime_overload.py."""

from __future__ import annotations

import asyncio
import itertools
import logging
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPO
from twin.cli import main
from twin.errors import ConfigError
from twin.modbus.client import MeterClient
from twin.runtime.config import TwinConfig
from twin.runtime.stepping import CHUNK_SAMPLES, Stepper
from twin.runtime.twin import Twin


class _RunawayClock:
    """A ticking clock far faster than any core: 1e8 meter seconds per wall second."""

    ticks = True
    speed = 1e8

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def elapsed_s(self) -> float:
        return (time.monotonic() - self._t0) * self.speed


async def test_overloaded_twin_answers_stops_and_lags(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="twin.runtime.twin")
    twin = Twin(TwinConfig(port=0, speed=1.0), clock=_RunawayClock())
    await twin.start()
    try:
        async with MeterClient(port=twin.port, timeout_s=5.0) as client:
            await asyncio.sleep(0.4)  # several ticks' worth of stepping under way
            for _ in range(5):  # answered while the meters step (timings: bench/)
                assert len(await client.read_registers(0, 10)) == 10
                await asyncio.sleep(0.03)
        assert twin.meter_time_s > 0  # it does step ...
        assert twin.lagging and twin.lag_s > 1e6  # ... but cannot keep up, and says so once
        await asyncio.sleep(0.3)
        lines = [r for r in caplog.records if "cannot keep up" in r.getMessage()]
        assert len(lines) == 1
    finally:
        await twin.stop()


class _BackloggedClock(_RunawayClock):
    """A clock already 1e12 meter seconds ahead: more is due than any tick can step."""

    def elapsed_s(self) -> float:
        return 1e12


class _CountingMeter:
    """Records the chunks it is stepped by."""

    def __init__(self) -> None:
        self.chunks: list[tuple[float, float, int]] = []

    def step(self, t0_s: float, dt_s: float, n: int) -> None:
        self.chunks.append((t0_s, dt_s, n))


async def test_a_tick_steps_in_bounded_chunks_and_yields_between_them() -> None:
    meter = _CountingMeter()
    stepper = Stepper(_BackloggedClock(), 1.0, None, [meter])
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(other_task())
    await asyncio.sleep(0)
    started = turns
    await stepper.step_to_clock()
    task.cancel()
    assert turns > started  # the event loop ran other work during the tick
    assert meter.chunks and all(n <= CHUNK_SAMPLES for _, _, n in meter.chunks)
    # contiguous: each chunk starts where the last ended, none skipped or repeated
    for (t0, dt, n), (t1, _, _) in itertools.pairwise(meter.chunks):
        assert t1 == t0 + n * dt
    assert stepper.samples_done == sum(n for _, _, n in meter.chunks)
    assert stepper.lagging and stepper.due() is not None  # what is left stays due


class _MovingClock:
    """x3600: the clock moves on while the meter steps (1 ms of wall time per call)."""

    ticks = True
    speed = 3600.0

    def __init__(self) -> None:
        self.t_s = 360.0  # a 0.1 s tick's worth is due

    def elapsed_s(self) -> float:
        return self.t_s


async def test_a_meter_that_keeps_up_at_x3600_is_not_lagging() -> None:
    """A tick steps to where the clock was when it began; chasing the clock as it moves
    on (3.6 samples per ms at x3600) used to spend the whole budget and then report a
    meter that keeps up as lagging ("cannot keep up" at every start)."""
    clock = _MovingClock()

    class Meter:
        def step(self, t0_s: float, dt_s: float, n: int) -> None:
            clock.t_s += 3.6

    stepper = Stepper(clock, 1.0, None, [Meter()])
    for _ in range(20):
        await stepper.step_to_clock()
        clock.t_s += 360.0  # the next tick
    assert not stepper.lagging
    assert stepper.lag_s < 400  # what the clock moved on meanwhile: the next tick's


def test_fast_run_stops_on_sigterm(free_port: int) -> None:
    # 1e6 samples per wall second: the most the config accepts for one meter.
    argv = ["run", "--no-state", "--port", str(free_port), "--speed", "1e4", "--sample", "0.01"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", *argv],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().startswith("serving")
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err


@pytest.mark.parametrize(("speed", "sample_s"), [(1e7, 0.01), (1e7, 1.0), (2e4, 0.01)])
def test_unsustainable_sample_rates_are_refused(speed: float, sample_s: float) -> None:
    with pytest.raises(ConfigError, match=r"--speed .* --sample .*at most 1e\+06"):
        TwinConfig(port=0, speed=speed, sample_s=sample_s)
    TwinConfig(port=0, speed=speed, sample_s=speed / 1e6)  # the limit itself is fine


def test_cli_refuses_an_unsustainable_speed_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--no-state", "--port", "0", "--speed", "1e7", "--sample", "0.01"]) == 1
    err = capsys.readouterr().err
    assert "--speed 1e+07 with --sample 0.01" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--seed", "--accuracy-seed", "--fault-seed"])
def test_negative_seeds_are_refused_in_one_line(
    option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--no-state", "--port", "0", option, "-1"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [
        f"minimeter run: error: {option} -1: out of range; expected 0..2^63-1"
    ]
    key = option.lstrip("-").replace("-", "_")
    with pytest.raises(ConfigError, match=f"{option} {2**63}: out of range"):
        TwinConfig(port=0, speed=None, **{key: 2**63})  # type: ignore[arg-type]
    assert getattr(TwinConfig(port=0, speed=None, **{key: 0}), key) == 0  # type: ignore[arg-type]
