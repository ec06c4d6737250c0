"""A big fleet ticks less often, so each core call carries more samples (issue 16); while
the tick loop runs, start-up objects are frozen for the collector."""

from __future__ import annotations

import asyncio
import gc
import sys

from twin.runtime.config import TwinConfig
from twin.runtime.stepping import (
    FULL_GC_AFTER,
    GIL_SWITCH_S,
    MAX_TICK_S,
    METERS_PER_TICK,
    fleet_tick_s,
)
from twin.runtime.twin import Twin


def test_small_fleets_keep_the_configured_tick() -> None:
    assert fleet_tick_s(0.1, 1) == 0.1
    assert fleet_tick_s(0.1, METERS_PER_TICK) == 0.1


def test_big_fleets_tick_in_proportion_up_to_the_cap() -> None:
    assert fleet_tick_s(0.1, 5 * METERS_PER_TICK) == 0.5
    assert fleet_tick_s(0.1, 10_000) == MAX_TICK_S
    assert fleet_tick_s(0.1, 100_000) == MAX_TICK_S
    assert fleet_tick_s(2.0, 10_000) == 2.0  # a longer configured tick is kept


async def test_while_ticking_startup_objects_are_frozen_and_the_gil_comes_back_sooner() -> None:
    switch_s, thresholds = sys.getswitchinterval(), gc.get_threshold()
    assert gc.get_freeze_count() == 0
    async with Twin(TwinConfig(port=0, speed=100.0, tick_s=0.01)) as twin:
        while twin.meter_time_s < 2.0:  # ticked
            await asyncio.sleep(0.05)
        assert gc.get_freeze_count() > 0  # the collector no longer scans the fleet
        assert sys.getswitchinterval() == min(switch_s, GIL_SWITCH_S)
        assert gc.get_threshold()[2] == max(thresholds[2], FULL_GC_AFTER)
    assert gc.get_freeze_count() == 0  # nothing left frozen once the twin stops
    assert sys.getswitchinterval() == switch_s and gc.get_threshold() == thresholds
