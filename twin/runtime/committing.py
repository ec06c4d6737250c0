"""A step reaches clients only once the store has it: commit, then publish.

Theory of operation
-------------------
With a store, the twin's meters step *deferred* (:attr:`LiveMeter.deferred`): a step
changes the core, but its events and register image are held. After each tick's
stepping, :meth:`StepCommitter.commit_and_publish` gathers the NvStates of a slice of
the fleet (read from the core's bank a hundred rows at a time), commits their changed
rows in a worker thread (:func:`twin.store.commit_in_thread`: in the WAL without
fsync, durable every checkpoint interval), and only then publishes those meters (their
held events to the listeners: MQTT, HTTP streams, a pulse output; then their snapshot;
the image is packed on its first read). So
every energy a client can read, a process crash keeps; what a crash loses is the
meters' steps since their last commit, which no client saw.

A slice is the whole fleet up to ``COMMIT_ROWS_PER_S x tick`` meters (400 at the
0.1 s tick: every meter, every tick). Gathering and committing a row costs about
35 us of CPU (`bench/bench_store_commit.py`), so a larger fleet is committed in
round-robin slices of that size, a bounded share of a core: each meter is committed
and published once every ``ceil(meters / slice)`` ticks (10,000 meters at the 1 s
fleet tick: every 3 ticks), which is then also its process-crash bound. A meter not
yet due keeps serving its last published image.

While the store fails (full disk, read-only), a slice is published without its commit
in the retry wait between attempts: the meters serve from memory.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from typing import Final

from twin.core import NvState
from twin.runtime.meters import LiveMeter, nv_items
from twin.runtime.stepping import YIELD_AFTER_S
from twin.store import Checkpointer, commit_in_thread

#: Rows committed per wall second of ticks at most (~35 us of CPU each: ~14 % of a core).
COMMIT_ROWS_PER_S: Final = 4_000
#: Rows read from the bank at once (~8 us each: an NvState apiece), under YIELD_AFTER_S.
GATHER_ROWS: Final = 100


def slice_size(meters: int, tick_s: float) -> int:
    """How many meters one tick commits: every one, up to ``COMMIT_ROWS_PER_S x tick_s``."""
    return max(1, min(meters, math.ceil(COMMIT_ROWS_PER_S * tick_s)))


class StepCommitter:
    """Commits and publishes the fleet's steps, a slice per tick, round-robin.

    ``meter_time_s()`` is the fleet's meter time, which moves when the fleet steps: a
    tick after a step starts (or continues) a round of the fleet; a tick with no step
    and no meter left to publish does nothing, unless a durable save is due (then the next slice is
    committed durably: a command's change on a meter at rest is saved that way).
    """

    def __init__(
        self,
        cp: Checkpointer,
        meters: Sequence[LiveMeter],
        tick_s: float,
        meter_time_s: Callable[[], float],
    ) -> None:
        self.cp = cp
        self.meters = meters
        self.size = slice_size(len(meters), tick_s)
        self._meter_time_s = meter_time_s
        self._seen = meter_time_s()
        self._next = 0  # the first meter of the next slice
        self._pending = 0  # meters still to commit and publish in this round

    @property
    def ticks_per_round(self) -> int:
        """Ticks between two commits of one meter: its process-crash bound, in ticks."""
        return math.ceil(len(self.meters) / self.size)

    def _slice(self) -> Sequence[LiveMeter]:
        meters, start = self.meters, self._next
        if self.size >= len(meters):
            return meters
        end = start + self.size
        self._next = end % len(meters)
        if end <= len(meters):
            return meters[start:end]
        return [*meters[start:], *meters[: self._next]]

    async def commit_and_publish(self) -> None:
        """One tick: commit the next slice (when the store is not in its retry wait),
        then publish it, whatever the commit's outcome."""
        stepped_to, now = self._meter_time_s(), time.monotonic()
        if stepped_to != self._seen:  # a step: every meter has something to show
            self._seen, self._pending = stepped_to, len(self.meters)
        if self._pending <= 0 and not self.cp.durable_due(now):
            return
        meters = self._slice()
        self._pending -= len(meters)
        try:
            if self.cp.due(now):
                items = await gather(meters)  # frozen NvStates: safe to hand to a thread
                await commit_in_thread(self.cp, items, now)
        finally:
            await publish(meters)


async def gather(meters: Sequence[LiveMeter]) -> list[tuple[str, NvState]]:
    """Each meter's NvState, read from the core's bank ``GATHER_ROWS`` rows at a time
    (:func:`~twin.runtime.meters.nv_items`), letting requests through every few ms."""
    items: list[tuple[str, NvState]] = []
    last = time.perf_counter()
    for i in range(0, len(meters), GATHER_ROWS):
        items.extend(nv_items(meters[i : i + GATHER_ROWS]))
        if time.perf_counter() - last > YIELD_AFTER_S:
            await asyncio.sleep(0)
            last = time.perf_counter()
    return items


async def publish(meters: Sequence[LiveMeter]) -> None:
    """Show each meter's committed steps, yielding to requests every few ms."""
    await each_yielding(meters, LiveMeter.publish)


async def each_yielding(meters: Sequence[LiveMeter], work: Callable[[LiveMeter], object]) -> None:
    """``work(meter)`` for each meter, letting requests through every ``YIELD_AFTER_S``."""
    last = time.perf_counter()
    for m in meters:
        work(m)
        if time.perf_counter() - last > YIELD_AFTER_S:
            await asyncio.sleep(0)
            last = time.perf_counter()
