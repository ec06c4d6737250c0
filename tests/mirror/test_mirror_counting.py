"""Counting through the mirror: reset, rollover, outage and restarts lose and double nothing.

A simulated ADAM-6051 (the devices tests' pymodbus counter module) counts in
"hardware"; the mirror polls it every 20 ms on a hand-moved clock and serves the
energy. Every figure is checked in the served registers' terms: energy in Wh and
``mirror_pulses``, from the counts the module really made.
"""

from __future__ import annotations

from pathlib import Path

from devices import JsonFileCounterStore
from tests.devices.fakes import CounterModule
from tests.helpers import until
from twin.mirror import COUNTER_FILE, Mirror, MirrorConfig, Verdict

KH = 10
ADAM_FC = 3


class Bench:
    """The module's counter on channel 0 and the mirror's clock, moved by the test."""

    def __init__(self, module: CounterModule, width: int = 32) -> None:
        self.module = module
        self.width = width
        self.now_s = 0.0

    def url(self, extra: str = "") -> str:
        if self.width == 16:
            base = f"modbus-counter://127.0.0.1:{self.module.port}?fc=3&addr=0&width=16"
        else:
            base = f"adam6051://127.0.0.1:{self.module.port}?channel=0"
        return f"{base}&kh={KH}&poll=20ms&timeout=200ms{extra}"

    async def set(self, raw: int) -> None:
        await self.module.set_counter(ADAM_FC, 0, raw, width=self.width, low_word_first=True)


def served(mirror: Mirror) -> tuple[int, int]:
    assert mirror.snapshot is not None
    return mirror.snapshot.energy_delivered_wh, int(mirror.extra()["mirror_pulses"])


def config(bench: Bench, state: Path, extra: str = "") -> MirrorConfig:
    return MirrorConfig(bench.url(extra), refresh_s=None, state_dir=state)


async def test_reset_of_the_counter_is_counted_from_zero(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    bench = Bench(counter_module)
    await bench.set(1000)
    async with Mirror(config(bench, tmp_path), clock=lambda: bench.now_s) as mirror:
        await until(lambda: mirror.readings >= 1, "baseline")
        await bench.set(1050)
        await until(lambda: mirror.source.total_counts == 50, "50 counts")
        await bench.set(0)  # cleared (or the module rebooted): never a negative jump
        bench.now_s += 60
        await bench.set(20)
        await until(lambda: mirror.source.total_counts >= 70, "counts after the reset")
        await bench.set(25)
        await until(lambda: mirror.source.total_counts >= 75, "counts after the reset")
        assert served(mirror) == (75 * KH, 75)


async def test_rollover_at_32_bits(counter_module: CounterModule, tmp_path: Path) -> None:
    bench = Bench(counter_module)
    await bench.set(2**32 - 3)
    async with Mirror(config(bench, tmp_path), clock=lambda: bench.now_s) as mirror:
        await until(lambda: mirror.readings >= 1, "baseline")
        bench.now_s += 1
        await bench.set(4)
        await until(lambda: mirror.source.total_counts == 7, "7 counts across the wrap")
        assert served(mirror) == (70, 7)


async def test_rollover_at_16_bits(counter_module: CounterModule, tmp_path: Path) -> None:
    bench = Bench(counter_module, width=16)
    await bench.set(65_530)
    async with Mirror(config(bench, tmp_path), clock=lambda: bench.now_s) as mirror:
        await until(lambda: mirror.readings >= 1, "baseline")
        bench.now_s += 1
        await bench.set(5)
        await until(lambda: mirror.source.total_counts == 11, "11 counts across the wrap")
        assert served(mirror) == (110, 11)


async def test_ten_minute_outage_is_stale_then_counted_once(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    bench = Bench(counter_module)
    await bench.set(0)
    # Staleness waits in wall time (the source's silence timer); the outage's 10 minutes
    # are on the mirror's clock, where they set the timing uncertainty of the counts.
    cfg = config(bench, tmp_path, "&stale=300ms")
    async with Mirror(cfg, clock=lambda: bench.now_s) as mirror:
        await until(lambda: mirror.readings >= 1, "baseline")
        await bench.set(30)
        await until(lambda: mirror.source.total_counts == 30, "30 counts")
        await counter_module.stop()  # the module goes away for 10 minutes
        bench.now_s += 600
        await until(lambda: mirror.stale, "stale")
        assert mirror.check.verdict is Verdict.INPUT_STALE
        assert mirror.snapshot is not None and mirror.snapshot.status_bits >> 14 & 1
        await bench.set(70)  # it kept counting meanwhile
        await counter_module.start()
        await until(lambda: not mirror.stale and mirror.source.total_counts == 70, "resumed")
        assert mirror.check.verdict is not Verdict.INPUT_STALE
        await bench.set(75)
        await until(lambda: mirror.source.total_counts == 75, "counting again")
        assert served(mirror) == (750, 75)
        assert mirror.snapshot.status_bits >> 14 & 1 == 0


async def test_source_restart_neither_loses_nor_double_counts(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    bench = Bench(counter_module)
    await bench.set(500)
    async with Mirror(config(bench, tmp_path), clock=lambda: bench.now_s) as mirror:
        await until(lambda: mirror.readings >= 1, "baseline")
        await bench.set(540)
        await until(lambda: mirror.source.total_counts == 40, "40 counts")
    record = JsonFileCounterStore(tmp_path / COUNTER_FILE).load(mirror.source.source_id)
    assert record is not None and (record.total_counts, record.last_raw) == (40, 540)
    await bench.set(565)  # counted while no source was reading
    async with Mirror(config(bench, tmp_path), clock=lambda: bench.now_s) as again:
        await until(lambda: again.source.total_counts == 65, "restored counts")
        assert served(again) == (650, 65)
        await bench.set(570)
        await until(lambda: again.source.total_counts == 70, "counting on")
        assert served(again) == (700, 70)
