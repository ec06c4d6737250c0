"""Not available: NaN in the snapshot reads the map's conventions in block A and SunSpec's
"not implemented" values in block D; accumulators never read SunSpec's 0 = not implemented.

An unpowered meter's snapshot carries NaN for its instantaneous quantities (the core's
rule); the register image is tested here with snapshots built from a real core run and
``dataclasses.replace`` so the encoding is checked whatever the core does.
"""

from __future__ import annotations

import math
import struct
from dataclasses import replace

import pytest

from twin.core import MeterConfig, MeterCore, MeterModel, SampleBlock, Snapshot, StatusBit
from twin.registers import BY_NAME, Identity, RegisterImage, RegisterKind, WordOrder, sunspec

INSTANTANEOUS = (
    "power_w",
    "power_l1_w",
    "power_l2_w",
    "voltage_l1_v",
    "voltage_l2_v",
    "voltage_l1_l2_v",
    "current_l1_a",
    "current_l2_a",
    "power_factor_l1",
    "power_factor_l2",
    "frequency_hz",
    "temperature_c",
)
HELD = ("energy_delivered_wh", "energy_l1_wh", "pulses_10wh", "power_up_count", "uptime_s")


def live_snapshot(model: str = "MMD-200A") -> Snapshot:
    core = MeterCore(MeterConfig(model=MeterModel.parse(model), serial_number="SN-7"))
    for _ in range(5):
        core.advance(SampleBlock.build(60, 1.0, voltage_v=[120.0, 120.0], current_a=[30.0, 15.0]))
    return core.snapshot()


def unpowered(snap: Snapshot, negative_nan: bool = False) -> Snapshot:
    nan = -math.nan if negative_nan else math.nan
    return replace(
        snap,
        powered=False,
        status_bits=snap.status_bits | 1 << StatusBit.UNPOWERED,
        **{name: nan for name in INSTANTANEOUS},
    )


def words(img: RegisterImage, name: str) -> bytes:
    reg = BY_NAME[name]
    return img.read_registers(reg.address, reg.count)


@pytest.mark.parametrize("order", [WordOrder.BIG, WordOrder.LITTLE])
@pytest.mark.parametrize("negative_nan", [False, True])
def test_unpowered_block_a_reads_not_available_and_energies_hold(
    order: WordOrder, negative_nan: bool
) -> None:
    live = live_snapshot()
    ident = Identity.from_config(MeterConfig(model=MeterModel.parse("MMD-200A")))
    before = RegisterImage.build(live, ident, word_order=order)
    after = RegisterImage.build(unpowered(live, negative_nan), ident, word_order=order)
    for name in INSTANTANEOUS:
        # 0x7FC00000 in either word order (the two words swap: 0x0000 0x7FC0)
        expected = b"\x7f\xc0\x00\x00" if order is WordOrder.BIG else b"\x00\x00\x7f\xc0"
        assert words(after, name) == expected, name
        assert words(before, name) != expected, name
    for name in HELD:
        assert words(after, name) == words(before, name), name
    assert live.energy_delivered_wh > 0


def test_nan_in_an_unsigned_register_reads_all_ones() -> None:
    """uint16 0xFFFF and uint32 0xFFFFFFFF (REGISTER_MAP.md), if the core ever says NaN there."""
    live = live_snapshot()
    ident = Identity.from_config(MeterConfig())
    odd = replace(live, demand_valid=math.nan, demand_max_at_s=math.nan)  # type: ignore[arg-type]
    img = RegisterImage.build(odd, ident)
    assert words(img, "demand_valid") == b"\xff\xff"
    assert words(img, "demand_max_at_s") == b"\xff\xff\xff\xff"
    assert words(img, "energy_delivered_wh") == struct.pack(">Q", live.energy_delivered_wh)


def meter_point(img: RegisterImage, name: str) -> int:
    p = next(p for p in sunspec.METER_POINTS if p.name == name)
    raw = img.read_registers(sunspec.METER_ADDRESS + p.offset, p.size)
    return int.from_bytes(raw, "big")


@pytest.mark.parametrize("model", ["MMD-200A", "MMS-100A"])
def test_unpowered_sunspec_reads_not_implemented_and_accumulators_hold(model: str) -> None:
    live = live_snapshot(model)
    ident = Identity.from_config(MeterConfig(model=MeterModel.parse(model)))
    on = RegisterImage.build(live, ident)
    off = RegisterImage.build(unpowered(live), ident)
    for name in ("A", "AphA", "PhV", "PhVphA", "Hz", "W", "WphA", "VA", "VAR", "PF", "PFphA"):
        assert meter_point(on, name) != 0x8000, name
        assert meter_point(off, name) == 0x8000, name
    for name in ("TotWhImp", "TotWhImpPhA", "TotWhExp", "A_SF", "W_SF", "TotWh_SF"):
        assert meter_point(off, name) == meter_point(on, name), name
    assert meter_point(off, "Evt") & 1 << 2  # Power_Failure
    assert not meter_point(on, "Evt") & 1 << 2


def test_accumulators_never_read_not_implemented() -> None:
    """0 Wh reads 1 count; 1 and above exact; a rollover to 0 reads 1; monotonic."""
    ident = Identity.from_config(MeterConfig())
    fresh = replace(live_snapshot(), energy_delivered_wh=0, energy_l1_wh=0, energy_l2_wh=0)
    seen = []
    for wh in (0, 1, 2, 5000, 2**32, 2**32 + 7):
        img = RegisterImage.build(replace(fresh, energy_delivered_wh=wh), ident)
        seen.append(meter_point(img, "TotWhImp"))
        assert meter_point(img, "TotWhExp") == 1  # registers no export: still implemented
        assert meter_point(img, "TotWhImpPhB") == 1
    assert seen == [1, 1, 2, 5000, 1, 7]
    assert RegisterKind.ACC32 == "acc32"
