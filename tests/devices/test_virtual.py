"""The in-process pair: a virtual sink's closures reach a virtual source as counts."""

from __future__ import annotations

import asyncio

import pytest

from devices import (
    CounterEvent,
    EdgeKind,
    MemoryCounterStore,
    open_channels,
    open_sink,
    open_source,
)
from tests.helpers import SETTLE_TIMEOUT_S, next_reading
from twin.errors import DeviceError


async def test_closures_become_counts_with_the_sinks_timestamps() -> None:
    async with (
        open_source("virtual://bench?kh=10") as source,
        open_sink("virtual://bench") as sink,
    ):
        assert open_channels() == ["bench"]
        for i in range(3):
            await sink.drive(True, at_s=100.0 + i)
            await sink.drive(False, at_s=100.5 + i)
        readings = [await next_reading(source) for _ in range(3)]
    assert [r.at_s for r in readings] == [100.0, 101.0, 102.0]
    assert [r.total_counts for r in readings] == [1, 2, 3]
    assert all(r.uncertainty_s == 0.0 and r.counts == 1 for r in readings)
    assert readings[-1].energy_wh == 30.0
    assert sink.closures == 3
    assert open_channels() == []


async def test_both_edges_count_half_kh_each() -> None:
    async with (
        open_source("virtual://b2?kh=10&edge=both") as source,
        open_sink("virtual://b2") as sink,
    ):
        await sink.drive(True, at_s=1.0)
        await sink.drive(False, at_s=2.0)
        first, second = await next_reading(source), await next_reading(source)
    assert (first.total_counts, second.total_counts) == (1, 2)
    assert second.energy_wh == 10.0


async def test_a_repeated_state_is_not_an_edge_and_bounces_are_dropped() -> None:
    async with (
        open_source("virtual://b3?kh=10&debounce=50ms") as source,
        open_sink("virtual://b3") as sink,
    ):
        await sink.drive(True, at_s=1.000)
        await sink.drive(True, at_s=1.001)  # same state: nothing written
        await sink.drive(False, at_s=1.010)  # bounce: within 50 ms of the closure
        await sink.drive(True, at_s=1.020)  # bounce
        await sink.drive(False, at_s=2.000)
        await sink.drive(True, at_s=3.000)
        first, second = await next_reading(source), await next_reading(source)
    assert (first.at_s, second.at_s) == (1.0, 3.0)
    assert second.total_counts == 2
    assert sink.closures == 3  # the sink drove them; the source's debounce dropped one


async def test_silence_makes_the_source_stale_and_an_edge_resumes_it() -> None:
    async with (
        open_source("virtual://b4?kh=10&stale=100ms") as source,
        open_sink("virtual://b4") as sink,
    ):
        stale = await next_reading(source)
        assert stale.event is CounterEvent.STALE and stale.stale and source.stale
        await sink.drive(True, at_s=5.0)
        resumed = await next_reading(source)
        counted = await next_reading(source)
    assert resumed.event is CounterEvent.RESUMED and not resumed.stale
    assert counted.counts == 1 and not source.stale


async def test_totals_survive_a_restart_through_the_store() -> None:
    store = MemoryCounterStore()
    for expected_total in (2, 4):
        async with (
            open_source("virtual://b5?kh=100", store=store) as source,
            open_sink("virtual://b5") as sink,
        ):
            for t in (1.0, 2.0):
                await sink.drive(True, at_s=t)
                await sink.drive(False, at_s=t + 0.5)
            for _ in range(2):
                reading = await next_reading(source)
        assert reading.total_counts == expected_total
    record = store.load("virtual://b5")
    assert record is not None and record.total_counts == 4 and record.last_raw is None


async def test_the_source_iterates_until_stopped() -> None:
    source = open_source("virtual://b6?kh=10&edge=falling")
    async with source, open_sink("virtual://b6") as sink:
        await sink.drive(True, at_s=1.0)
        await sink.drive(False, at_s=2.0)
        async with asyncio.timeout(SETTLE_TIMEOUT_S):
            async for reading in source:
                assert reading.at_s == 2.0 and reading.total_counts == 1
                break
    assert source.config.counts_edge(EdgeKind.FALLING)


async def test_read_before_start_is_refused() -> None:
    source = open_source("virtual://b7?kh=10")
    with pytest.raises(DeviceError, match="not started"):
        await source.read()
