"""Stepping the fleet to the clock: meter time, lag, and a tick that never starves I/O.

Theory of operation
-------------------
The clock says how much *meter time* has elapsed; the meters step together in samples
of a fixed period (``sample_s``, 1 s of meter time by default), so at ``--speed 3600``
a 0.1 s tick carries 360 samples and the energy registered is the same integral as at
real time. Under a manual clock nothing ticks: :meth:`Stepper.step` advances it.
``until_s`` freezes the meters at a meter time.

The meters step in units (:func:`twin.runtime.groups.step_units`): the meters of one
shared sampler as groups advanced by one core call (up to ``GROUP_MAX`` rows of the
core's bank), other meters alone.

Stepping never starves the servers: :meth:`Stepper.step_to_clock` steps the fleet in
chunks of at most ``CHUNK_SAMPLES`` samples per meter, yields to the event loop
between chunks (and between units every few milliseconds), and stops after
``TICK_BUDGET_S`` of wall time. What is left stays due: when the core cannot keep up
with the clock, meter time lags behind it (one log line when that starts;
:attr:`Stepper.lag_s` says how far) instead of one tick growing without bound while
requests and signals wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import math
import sys
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence

from twin.runtime.clock import Clock, ManualClock
from twin.runtime.groups import Steppable, step_units

log = logging.getLogger("twin.runtime.twin")

YIELD_AFTER_S = 0.003  # step at most this long before letting requests through
# Per unit per chunk: big enough to amortise a core call's fixed cost (~0.1-0.3 ms)
# (~1.5 ms of work at the core's ~10 M samples/s), small enough to yield often.
CHUNK_SAMPLES = 16_384
TICK_BUDGET_S = 0.05  # wall time a 0.1 s tick may spend stepping (in proportion for longer)
# Each step costs every meter a little (its share of a group call, its registers marked
# changed), however few samples it carries: past this many meters the tick stretches
# in proportion (at most MAX_TICK_S), so a big fleet advances more samples per step.
METERS_PER_TICK = 1_000
MAX_TICK_S = 1.0
GIL_SWITCH_S = 0.0005  # while ticking (see tick_loop)
FULL_GC_AFTER = 100  # second-generation collections between full ones while ticking


def fleet_tick_s(tick_s: float, meters: int) -> float:
    """The tick for a fleet of ``meters``: ``tick_s`` up to METERS_PER_TICK, then longer."""
    return max(tick_s, min(MAX_TICK_S, tick_s * meters / METERS_PER_TICK))


class Stepper:
    """Meter time of a fleet that steps together, driven by ``clock``."""

    def __init__(
        self, clock: Clock, sample_s: float, until_s: float | None, meters: Sequence[Steppable]
    ) -> None:
        self.clock = clock
        self.sample_s = sample_s
        self.until_s = until_s
        self.meters = meters
        self.samples_done = 0
        self.lagging = False  # True once the meters fell behind the clock
        self.budget_s = TICK_BUDGET_S  # wall time one tick may spend stepping

    @property
    def meter_time_s(self) -> float:
        """Meter time stepped so far (s since this run started)."""
        return self.samples_done * self.sample_s

    def _target_s(self) -> float:
        target_s = self.clock.elapsed_s()
        return target_s if self.until_s is None else min(target_s, self.until_s)

    @property
    def lag_s(self) -> float:
        """Meter time the clock asks for that the meters have not stepped yet."""
        return max(0.0, self._target_s() - self.meter_time_s)

    def due(self, target_s: float | None = None) -> tuple[float, float, int] | None:
        """(profile time, sample period, samples) the clock asks for (or up to meter time
        ``target_s``), or None."""
        target_s = self._target_s() if target_s is None else target_s
        # A hair of slack so 3600.0 s of meter time is 3600 samples, not 3599.
        n = math.floor(target_s / self.sample_s + 1e-9) - self.samples_done
        if n <= 0:
            return None
        return self.samples_done * self.sample_s, self.sample_s, n

    def step(self, seconds: float) -> None:
        """Advance a manual clock by ``seconds`` of meter time and step every meter."""
        if not isinstance(self.clock, ManualClock):
            raise RuntimeError("step() needs a manual clock (TwinConfig(speed=None))")
        self.clock.advance(seconds)
        span = self.due()
        if span is not None:
            for unit in step_units(self.meters):
                unit.step(*span)
            self.samples_done += span[2]

    async def step_to_clock(self) -> None:
        """One tick's stepping: chunks, yielding between them, within the wall budget.

        A tick steps to where the clock was when it began, not after it as it moves on:
        at x3600 the clock adds a sample every 0.3 ms, and chasing it would spend the
        whole budget on tiny chunks and then call a meter that keeps up lagging."""
        start = last = time.perf_counter()
        target_s = self._target_s()
        while True:
            span = self.due(target_s)
            if span is None:
                return
            t0_s, dt_s, n = span
            n = min(n, CHUNK_SAMPLES)
            for unit in step_units(self.meters):
                unit.step(t0_s, dt_s, n)
                if time.perf_counter() - last > YIELD_AFTER_S:
                    await asyncio.sleep(0)  # let waiting requests through between meters
                    last = time.perf_counter()
            self.samples_done += n
            if time.perf_counter() - start > self.budget_s:
                break
            await asyncio.sleep(0)  # requests and signals between chunks, too
            last = time.perf_counter()
        if self.due(target_s) is not None and not self.lagging:
            self.lagging = True  # once per run: the status line shows the lag from then on
            log.warning(
                "the meters cannot keep up with the clock (speed x%g, sample %g s, %d "
                "meter(s)): meter time now lags behind it",
                self.clock.speed,
                self.sample_s,
                len(self.meters),
            )


@contextlib.contextmanager
def _ticking_process() -> Iterator[None]:
    """The process's collector and GIL set for serving while the tick loop runs, then
    restored (tests run many twins in one process)."""
    # What start-up built (the fleet's meters, configs, endpoints) lives as long as the
    # loop: the collector stops scanning it, so a full collection costs what changed
    # since (5,000 meters: 60-150 ms of the loop per full collection before, ~10-30 ms).
    # No collection first: that would hold the loop for as long, once (start-up's cyclic
    # garbage stays, a bounded one-off).
    gc.freeze()
    # ... and runs once every FULL_GC_AFTER young collections, not every 10 (~6 s).
    thresholds = gc.get_threshold()
    gc.set_threshold(thresholds[0], thresholds[1], max(thresholds[2], FULL_GC_AFTER))
    # The store's commits run Python in a worker thread (committing.py): the loop takes
    # the GIL back after GIL_SWITCH_S instead of the default 5 ms, per request it serves.
    switch_s = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_s, GIL_SWITCH_S))
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(switch_s)


async def tick_loop(
    stepper: Stepper, tick_s: float, after_step: Callable[[], Awaitable[None]]
) -> None:
    """Every ``tick_s`` of wall time (longer for a big fleet: :func:`fleet_tick_s`): step
    to the clock, then ``after_step`` (faults, traces, checkpoints). A failure is logged
    (once a second at most), not fatal."""
    loop = asyncio.get_running_loop()
    fleet_tick = fleet_tick_s(tick_s, len(stepper.meters))
    stepper.budget_s = TICK_BUDGET_S * fleet_tick / tick_s  # the same share of each tick
    tick_s = fleet_tick
    next_t = loop.time()
    with _ticking_process():
        while True:
            next_t += tick_s
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            try:
                await stepper.step_to_clock()
                await after_step()
            except Exception:
                log.exception("stepping the meters failed")
                await asyncio.sleep(1.0)  # one line per second at most, not per tick
            if next_t < loop.time() - 1.0:
                next_t = loop.time()  # fell far behind (suspended): don't burst
