"""GPIO source and sink on a gpio-sim chip (Linux configfs); skipped where there is none.

The test makes a simulated chip through ``/sys/kernel/config/gpio-sim`` (needs the
gpio-sim module, configfs and root), flips an input line's simulated pull to make
edges, and reads back the value the sink drives on an output line.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices import CounterEvent, PulseReading, PulseSourceBase, open_sink, open_source

GPIO_SIM = Path("/sys/kernel/config/gpio-sim")


@dataclass(frozen=True)
class SimChip:
    chip_path: str
    sysfs: Path  # /sys/devices/platform/<dev>/<chip>, with sim_gpioN/{pull,value}

    def pull(self, line: int, up: bool) -> None:
        (self.sysfs / f"sim_gpio{line}" / "pull").write_text("pull-up" if up else "pull-down")

    def value(self, line: int) -> int:
        return int((self.sysfs / f"sim_gpio{line}" / "value").read_text().strip())


def gpio_sim_missing() -> str | None:
    if not GPIO_SIM.is_dir():
        return f"no gpio-sim chip can be made here: {GPIO_SIM} is missing (modprobe gpio-sim)"
    if not os.access(GPIO_SIM, os.W_OK):
        return f"no gpio-sim chip can be made here: {GPIO_SIM} is not writable (needs root)"
    return None


@pytest.fixture
def sim_chip() -> Iterator[SimChip]:
    reason = gpio_sim_missing()
    if reason is not None:
        pytest.skip(reason)
    device = GPIO_SIM / f"minimeter-{os.getpid()}"
    bank = device / "bank0"
    device.mkdir()
    bank.mkdir()
    try:
        (bank / "num_lines").write_text("4")
        (device / "live").write_text("1")
        chip = (bank / "chip_name").read_text().strip()
        dev_name = (device / "dev_name").read_text().strip()
        yield SimChip(f"/dev/{chip}", Path("/sys/devices/platform") / dev_name / chip)
    finally:
        (device / "live").write_text("0")
        bank.rmdir()
        device.rmdir()


async def next_reading(source: PulseSourceBase) -> PulseReading:
    async with asyncio.timeout(5):
        return await source.read()


async def test_gpio_source_counts_rising_edges_with_kernel_timestamps(sim_chip: SimChip) -> None:
    sim_chip.pull(0, up=False)
    url = f"gpio://{sim_chip.chip_path}?line=0&kh=10&bias=as-is&debounce=0ms"
    async with open_source(url) as source:
        readings = []
        for _ in range(3):
            sim_chip.pull(0, up=True)
            readings.append(await next_reading(source))
            await asyncio.sleep(0.02)
            sim_chip.pull(0, up=False)
            await asyncio.sleep(0.02)
    assert [r.total_counts for r in readings] == [1, 2, 3]
    assert all(r.event is CounterEvent.COUNT for r in readings)
    assert readings[0].at_s < readings[1].at_s < readings[2].at_s


async def test_gpio_sink_drives_the_line(sim_chip: SimChip) -> None:
    async with open_sink(f"gpio://{sim_chip.chip_path}?line=1") as sink:
        seen = []
        for closed in (True, False, True):
            await sink.drive(closed)
            seen.append(sim_chip.value(1))
    assert seen == [1, 0, 1]
    assert sink.closures == 2
