"""The runtime in process, on a manual clock: stepping, image refresh, the write
conventions of REGISTER_MAP.md over a real Modbus client, word order, SunSpec,
restart continuity."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from twin.core import ClearPulseCounts
from twin.modbus.client import (
    ExceptionReply,
    MeterClient,
    decode_float32,
    decode_string,
    decode_uint,
    same_float,
)
from twin.registers import WordOrder
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin

CONST_2400W = """\
schema: 1
name: const-2400
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 10, pf: 1.0}
    L2: {voltage: 120, current: 10, pf: 1.0}
"""


@pytest.fixture
def const_profile(tmp_path: Path) -> str:
    path = tmp_path / "const.yaml"
    path.write_text(CONST_2400W)
    return str(path)


def _config(profile: str, **kw: object) -> TwinConfig:
    return TwinConfig(profile=profile, port=0, speed=None, **kw)  # type: ignore[arg-type]


async def test_manual_steps_register_the_integral_and_refresh_the_image(
    const_profile: str,
) -> None:
    async with Twin(_config(const_profile)) as twin, MeterClient(port=twin.port) as c:
        assert await c.read_uint(0, 4) == 0
        twin.step(3600)
        snap = twin.meter().snapshot
        assert snap.energy_delivered_wh == 2400  # 2 × 120 V × 10 A for one hour
        assert await c.read_uint(0, 4) == 2400
        assert await c.read_float32(20) == pytest.approx(2400.0)
        assert await c.read_uint(66, 2) == snap.power_up_count == 1
        assert await c.read_registers(0, 40, fc=4) == await c.read_registers(0, 40, fc=3)


async def test_every_register_of_the_map_reads(const_profile: str) -> None:
    from twin.registers import REGISTERS

    async with Twin(_config(const_profile)) as twin, MeterClient(port=twin.port) as c:
        twin.step(120)
        for start in (0, 100, 200):
            assert len(await c.read_registers(start, 100)) == 100
        assert len(await c.read_registers(40000, 125)) == 125
        assert len(await c.read_registers(40125, 54)) == 54
        snap = twin.meter().snapshot
        for reg in REGISTERS:  # each register on its own, as a SCADA tag would read it
            words = await c.read_registers(reg.address, reg.count)
            assert len(words) == reg.count, reg.name
            if reg.block not in "AB":
                continue
            value = getattr(snap, reg.name, None)
            if reg.kind == "float32" and isinstance(value, float):
                assert same_float(decode_float32(words), value), reg.name
            elif reg.kind.startswith("uint") and isinstance(value, int) and reg.address < 100:
                assert decode_uint(words) == value, reg.name
        assert decode_string(await c.read_registers(108, 16)) == "MM00000001"
        assert (await c.read_bits(2, 0, 32))[13] is False  # powered
        ident = await c.device_identification()
        assert ident[1] == b"MMD-200A" and ident[2] == b"twin-1.0"


async def test_little_word_order_swaps_words_not_values(const_profile: str) -> None:
    async with (
        Twin(_config(const_profile)) as big,
        Twin(_config(const_profile, word_order="little")) as little,
        MeterClient(port=big.port) as cb,
        MeterClient(port=little.port) as cl,
    ):
        big.step(1800)
        little.step(1800)
        wb, wl = await cb.read_registers(0, 4), await cl.read_registers(0, 4)
        assert wl == wb[::-1] and decode_uint(wl, WordOrder.LITTLE) == 1200
        pb, pl = await cb.read_registers(20, 2), await cl.read_registers(20, 2)
        assert pl == pb[::-1]
        assert decode_float32(pl, WordOrder.LITTLE) == decode_float32(pb) == pytest.approx(2400)
        assert await cl.read_registers(108, 16) == await cb.read_registers(108, 16)  # strings


async def test_sunspec_walk_agrees_with_block_a(const_profile: str) -> None:
    async with Twin(_config(const_profile)) as twin, MeterClient(port=twin.port) as c:
        twin.step(3600)
        assert await c.read_registers(40000, 2) == [0x5375, 0x6E53]  # "SunS"
        address, models = 40002, []
        while True:
            model_id, length = await c.read_registers(address, 2)
            if model_id == 0xFFFF:
                assert length == 0
                break
            models.append((model_id, address))
            address += 2 + length
        assert [m for m, _ in models] == [1, 202]
        meter = models[1][1]
        regs = await c.read_registers(meter, 107)

        def int16(v: int) -> int:
            return v - 0x10000 if v & 0x8000 else v

        w = int16(regs[18]) * 10.0 ** int16(regs[22])
        tot_wh_imp = ((regs[46] << 16) | regs[47]) * 10.0 ** int16(regs[54])
        assert w == pytest.approx(await c.read_float32(20), rel=1e-3)
        assert tot_wh_imp == await c.read_uint(0, 4) == 2400
    no_sunspec = _config(const_profile, sunspec=False)
    async with Twin(no_sunspec) as twin, MeterClient(port=twin.port) as c:
        with pytest.raises(ExceptionReply) as exc:
            await c.read_registers(40000, 2)
        assert exc.value.code == 2


async def test_writes_off_answer_01_and_change_nothing(const_profile: str) -> None:
    async with Twin(_config(const_profile)) as twin, MeterClient(port=twin.port) as c:
        twin.step(600)
        before = await c.read_registers(0, 100)
        for write in (c.write_register(200, 16498), c.write_registers(201, [30])):
            with pytest.raises(ExceptionReply) as exc:
                await write
            assert exc.value.code == 1
        assert await c.read_registers(0, 100) == before
        assert await c.read_registers(200, 6) == [0, 15, 3, 0, 24, 0]


async def test_commands_act_and_refusals_change_nothing(const_profile: str) -> None:
    cfg = _config(const_profile, allow_writes=True)
    async with Twin(cfg) as twin, MeterClient(port=twin.port) as c:
        twin.step(3600)
        snap = twin.meter().snapshot
        assert snap.pulses_10wh > 0 and snap.demand_max_kw > 0
        # read-only address: 02; bad value: 03; clear energy while locked: 03
        for address, value, code in ((0, 1, 2), (100, 1, 2), (201, 61, 3), (200, 30078, 3)):
            with pytest.raises(ExceptionReply) as exc:
                await c.write_register(address, value)
            assert exc.value.code == code
        assert twin.meter().snapshot == snap  # nothing changed
        await c.write_register(200, 16498)  # clear pulse counts
        assert await c.read_uint(56, 2) == 0 and await c.read_uint(0, 4) == 2400
        await c.write_register(200, 21212)  # reset maximum demand
        # 21212 resets the maximum to the present demand (4000-series semantics)
        assert await c.read_float32(44) == pytest.approx(snap.demand_kw, rel=1e-6)
        twin.step(100)
        assert await c.read_registers(48, 1) != [0]
        await c.write_register(200, 21211)  # new demand sub-interval
        assert await c.read_registers(48, 1) == [0]
        await c.write_registers(201, [30, 5])
        assert await c.read_registers(201, 2) == [30, 5]
        assert await c.read_registers(200, 1) == [0]  # the command register reads 0


async def test_energy_clear_only_when_unlocked(const_profile: str) -> None:
    cfg = _config(const_profile, allow_writes=True, allow_energy_reset=True)
    async with Twin(cfg) as twin, MeterClient(port=twin.port) as c:
        twin.step(600)
        assert await c.read_uint(0, 4) == 400
        await c.write_register(200, 30078)
        assert await c.read_uint(0, 4) == 0


async def test_restart_continues_the_same_meter(const_profile: str, tmp_path: Path) -> None:
    cfg = _config(const_profile, state_dir=tmp_path / "state")
    async with Twin(cfg) as twin:
        twin.step(1800)
        twin.meter().apply(ClearPulseCounts())
        twin.step(1800)
        first = twin.meter().snapshot
    async with Twin(cfg) as twin, MeterClient(port=twin.port) as c:
        again = twin.meter().snapshot
        assert again.energy_delivered_wh == first.energy_delivered_wh == 2400
        assert again.pulses_10wh == first.pulses_10wh
        assert again.power_up_count == first.power_up_count == 1
        twin.step(900)
        assert await c.read_uint(0, 4) == 3000
        assert await c.read_uint(66, 2) == 1  # a process restart is not a power cycle


async def test_until_freezes_the_meter(const_profile: str) -> None:
    async with Twin(_config(const_profile, until_s=60.0)) as twin:
        twin.step(3600)
        assert twin.meter_time_s == 60.0
        assert math.isclose(twin.meter().snapshot.energy_delivered_wh, 40)


async def test_accelerated_ticks_checkpoint_while_running(
    const_profile: str, tmp_path: Path
) -> None:
    import asyncio

    from twin.store.sqlite import Store, store_path

    cfg = TwinConfig(
        profile=const_profile,
        port=0,
        speed=36_000.0,  # 10 h of meter time per wall second
        tick_s=0.01,
        state_dir=tmp_path / "state",
        checkpoint_interval_s=0.05,
    )
    async with Twin(cfg) as twin:
        await asyncio.sleep(0.3)
        assert twin.meter_time_s >= 3600
        assert twin.checkpointer is not None and twin.checkpointer.checkpoints >= 2
        with Store(store_path(tmp_path / "state"), read_only=True) as store:  # mid-run reader
            saved = store.load("MM00000001")
        assert saved is not None and saved.energy_delivered_uj > 0
    with Store(store_path(tmp_path / "state")) as store:
        final = store.load("MM00000001")
    assert final is not None
    # the final checkpoint on stop holds exactly what the meter had registered
    assert final.energy_delivered_uj == twin.meter().snapshot.energy_delivered_uj
    assert final.energy_delivered_uj // 3_600_000_000 == twin.meter().snapshot.energy_delivered_wh


def test_clocks() -> None:
    from twin.runtime.clock import AcceleratedClock, ManualClock, RealClock, make_clock

    manual = ManualClock()
    manual.advance(2.5)
    assert manual.elapsed_s() == 2.5 and not manual.ticks
    with pytest.raises(ValueError, match="advance"):
        manual.advance(-1)
    with pytest.raises(ValueError, match="speed"):
        AcceleratedClock(0)
    assert isinstance(make_clock(None), ManualClock)
    assert isinstance(make_clock(1.0), RealClock)
    fast = make_clock(1000.0)
    assert fast.ticks and fast.speed == 1000.0


def test_config_validation(const_profile: str) -> None:
    from twin.errors import ConfigError

    for bad in ({"unit": 0}, {"port": 70000}, {"speed": -1.0}, {"model": "MMX-1"}):
        with pytest.raises(ConfigError):
            TwinConfig(profile=const_profile, **bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="nothing to serve"):
        TwinConfig(profile=const_profile, port=None)


async def test_step_needs_a_manual_clock(const_profile: str) -> None:
    async with Twin(TwinConfig(profile=const_profile, port=0, speed=1.0)) as twin:
        with pytest.raises(RuntimeError, match="manual clock"):
            twin.step(1)


async def test_reserved_read_zero_and_not_available_values(const_profile: str) -> None:
    async with (
        Twin(_config(const_profile, model="MMS-100A")) as twin,
        MeterClient(port=twin.port) as c,
    ):
        twin.step(60)
        assert await c.read_registers(79, 21) == [0] * 21  # reserved tail of block A
        assert await c.read_registers(107, 1) == [0]  # reserved inside block B
        assert await c.read_registers(28, 2) == [0x7FC0, 0x0000]  # L2 volts: NaN, 1 element
        assert await c.read_registers(102, 1) == [1]  # elements
        with pytest.raises(ExceptionReply) as exc:
            await c.read_bits(2, 30, 4)  # discrete inputs are 0..31
        assert exc.value.code == 2
