"""Counter modules over Modbus TCP (pymodbus servers standing in for the hardware).

The module's counter is advanced by the test; every count must arrive exactly once
through resets, rollovers at 16 and 32 bits, an outage and a restart of the source.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devices import (
    CounterEvent,
    DeviceIOError,
    JsonFileCounterStore,
    PulseReading,
    PulseSourceBase,
    cancel_and_wait,
    open_sink,
    open_source,
)
from tests.devices.fakes import CounterModule
from tests.helpers import find_free_port, next_reading, until
from twin.errors import DeviceError

POLL = "poll=20ms"


async def counts_until(source: PulseSourceBase, event: CounterEvent) -> PulseReading:
    """Readings until one with ``event`` (staleness/resume news may come first)."""
    while True:
        reading = await next_reading(source)
        if reading.event is event:
            return reading


def adam_url(module: CounterModule, channel: int, extra: str = "") -> str:
    return f"adam6051://127.0.0.1:{module.port}?channel={channel}&kh=10&{POLL}{extra}"


async def test_adam6051_counts_low_word_first_and_rolls_over_at_32_bits(
    counter_module: CounterModule,
) -> None:
    async def set_adam(value: int) -> None:
        # channel 3 -> holding registers 6, 7, low word first
        await counter_module.set_counter(3, 6, value, low_word_first=True)

    await set_adam(0x0001_FFFE)
    async with open_source(adam_url(counter_module, 3)) as source:
        baseline = await next_reading(source)
        assert (baseline.event, baseline.raw_counter, baseline.total_counts) == (
            CounterEvent.BASELINE,
            0x0001_FFFE,
            0,
        )
        await set_adam(0x0002_0003)  # across the word boundary: +5
        step = await next_reading(source)
        assert (step.event, step.counts, step.total_counts) == (CounterEvent.COUNT, 5, 5)
        assert step.energy_wh == 50.0
        assert step.uncertainty_s > 0  # known only to within the poll period
        await set_adam(2**32 - 3)
        await next_reading(source)  # a big jump up is counted as is (here 4294311934)
        await set_adam(4)  # wraps: 3 up to 2**32 - 1, then 0..4
        wrap = await next_reading(source)
    assert (wrap.event, wrap.counts) == (CounterEvent.ROLLOVER, 7)


async def test_iologik_reads_input_registers_high_word_first(
    counter_module: CounterModule,
) -> None:
    # channel 2 -> input registers 0x14, 0x15, high word first
    await counter_module.set_counter(4, 0x14, 0x0001_0002, low_word_first=False)
    url = f"iologik://127.0.0.1:{counter_module.port}?channel=2&kh=100&{POLL}"
    async with open_source(url) as source:
        baseline = await next_reading(source)
        await counter_module.set_counter(4, 0x14, 0x0001_0009, low_word_first=False)
        step = await next_reading(source)
    assert baseline.raw_counter == 65538
    assert (step.counts, step.energy_wh) == (7, 700.0)


async def test_generic_16_bit_counter_rolls_over_and_a_decrease_is_a_reset(
    counter_module: CounterModule,
) -> None:
    url = (
        f"modbus-counter://127.0.0.1:{counter_module.port}"
        f"?unit=1&fc=3&addr=16&width=16&kh=10&{POLL}"
    )
    await counter_module.set_counter(3, 16, 65530, width=16, low_word_first=True)
    async with open_source(url) as source:
        await next_reading(source)
        await counter_module.set_counter(3, 16, 4, width=16, low_word_first=True)
        wrap = await next_reading(source)
        assert (wrap.event, wrap.counts, wrap.total_counts) == (CounterEvent.ROLLOVER, 10, 10)
        await counter_module.set_counter(3, 16, 1000, width=16, low_word_first=True)
        await next_reading(source)
        await counter_module.set_counter(3, 16, 3, width=16, low_word_first=True)  # cleared
        reset = await next_reading(source)
    # Never a negative jump: the 3 counts since the reset are counted.
    assert (reset.event, reset.counts, reset.total_counts) == (CounterEvent.RESET, 3, 1009)


async def test_an_outage_goes_stale_and_loses_nothing(counter_module: CounterModule) -> None:
    # No timings assumed: each step waits (bounded) for what the source must do next.
    await counter_module.set_counter(3, 0, 100, low_word_first=True)
    async with open_source(adam_url(counter_module, 0, "&stale=200ms")) as source:
        await next_reading(source)
        await counter_module.stop()
        await counter_module.set_counter(3, 0, 142, low_word_first=True)  # counted while down
        stale = await next_reading(source)
        assert stale.event is CounterEvent.STALE and source.stale
        # Keep polling through the outage: the source must say why it hears nothing
        # (the stale timer may have cut short a request the module never answered).
        resuming = asyncio.create_task(next_reading(source))
        try:
            await until(
                lambda: "cannot connect" in (source.last_error or ""), "the connect failure"
            )
            await counter_module.start()
            resumed = await resuming
        finally:
            await cancel_and_wait([resuming])
        step = await counts_until(source, CounterEvent.COUNT)
    assert resumed.event is CounterEvent.RESUMED and not resumed.stale
    assert (step.counts, step.total_counts) == (42, 42)
    # The counts happened somewhere in the outage: the uncertainty spans it.
    assert step.uncertainty_s >= step.at_s - stale.at_s


async def test_a_source_restart_neither_loses_nor_double_counts(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    path = tmp_path / "counters.json"
    await counter_module.set_counter(3, 2, 500, low_word_first=True)
    async with open_source(adam_url(counter_module, 1), store=JsonFileCounterStore(path)) as s1:
        await next_reading(s1)
        await counter_module.set_counter(3, 2, 520, low_word_first=True)
        assert (await next_reading(s1)).total_counts == 20
    await counter_module.set_counter(3, 2, 527, low_word_first=True)  # while nobody polls
    async with open_source(adam_url(counter_module, 1), store=JsonFileCounterStore(path)) as s2:
        restored = await next_reading(s2)
        assert (restored.event, restored.counts, restored.total_counts) == (
            CounterEvent.RESTORED,
            7,
            27,
        )
        await counter_module.set_counter(3, 2, 530, low_word_first=True)
        assert (await next_reading(s2)).total_counts == 30


async def test_a_module_reboot_between_source_runs_is_a_reset(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    path = tmp_path / "counters.json"
    await counter_module.set_counter(3, 0, 9000, low_word_first=True)
    async with open_source(adam_url(counter_module, 0), store=JsonFileCounterStore(path)) as s1:
        await next_reading(s1)
    await counter_module.set_counter(3, 0, 12, low_word_first=True)  # rebooted, counted 12
    async with open_source(adam_url(counter_module, 0), store=JsonFileCounterStore(path)) as s2:
        reset = await next_reading(s2)
    assert (reset.event, reset.counts, reset.total_counts) == (CounterEvent.RESET, 12, 12)


async def test_an_address_the_module_lacks_is_a_clear_error(
    counter_module: CounterModule,
) -> None:
    url = f"modbus-counter://127.0.0.1:{counter_module.port}?addr=200&kh=10&{POLL}"
    async with open_source(url) as source:
        with pytest.raises(DeviceError, match=r"address 200: exception 02.*check addr"):
            await next_reading(source)


async def test_coil_sink_drives_exactly_the_closures_in_order(
    counter_module: CounterModule,
) -> None:
    closures = [True, False, True, True, False, True, False, False, True]
    async with open_sink(f"modbus-coil://127.0.0.1:{counter_module.port}?unit=1&coil=5") as sink:
        for closed in closures:
            await sink.drive(closed)
    changes = [c for i, c in enumerate(closures) if c != ([False, *closures][i])]
    assert counter_module.coil_writes == [(5, c) for c in changes]
    assert sink.closures == changes.count(True) == 4


async def test_a_coil_sink_whose_module_is_down_raises_a_device_io_error() -> None:
    async with open_sink(f"modbus-coil://127.0.0.1:{find_free_port()}?coil=0") as sink:
        with pytest.raises(DeviceIOError, match="cannot connect"):
            await sink.drive(True)
        assert not sink.closed and sink.closures == 0  # a failed write changes nothing
