"""A big fleet ticks less often, so each core call carries more samples (issue 16)."""

from __future__ import annotations

from twin.runtime.stepping import MAX_TICK_S, METERS_PER_TICK, fleet_tick_s


def test_small_fleets_keep_the_configured_tick() -> None:
    assert fleet_tick_s(0.1, 1) == 0.1
    assert fleet_tick_s(0.1, METERS_PER_TICK) == 0.1


def test_big_fleets_tick_in_proportion_up_to_the_cap() -> None:
    assert fleet_tick_s(0.1, 5 * METERS_PER_TICK) == 0.5
    assert fleet_tick_s(0.1, 10_000) == MAX_TICK_S
    assert fleet_tick_s(0.1, 100_000) == MAX_TICK_S
    assert fleet_tick_s(2.0, 10_000) == 2.0  # a longer configured tick is kept
