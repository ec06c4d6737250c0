"""SunSpec block D: a client-style walk over the image, values against block A, conventions."""

from __future__ import annotations

import math
import struct

import pytest

from twin.core import MeterConfig, MeterCore, MeterModel, SampleBlock, StatusBit
from twin.registers import (
    REGISTERS,
    Identity,
    RegisterImage,
    RegisterKind,
    WordOrder,
    decode,
    sunspec,
)

NI16 = 0x8000


def core_after(model: str, minutes: int = 30, **block: object) -> MeterCore:
    core = MeterCore(MeterConfig(model=MeterModel.parse(model), serial_number="SN-42"))
    kw: dict[str, object] = {"voltage_v": [119.0, 121.0], "current_a": [60.0, 35.0]}
    kw.update(block)
    for _ in range(minutes):
        core.advance(SampleBlock.build(60, 1.0, **kw))  # type: ignore[arg-type]
    return core


def image(core: MeterCore, order: WordOrder = WordOrder.BIG) -> RegisterImage:
    ident = Identity.from_config(core.config, unit_id=3)
    return RegisterImage.build(core.snapshot(), ident, word_order=order)


def read(img: RegisterImage, address: int, count: int) -> list[int]:
    out: list[int] = []
    while count:  # like a client: at most 125 registers per request
        n = min(count, 125)
        out += struct.unpack(f">{n}H", img.read_registers(address, n))
        address, count = address + n, count - n
    return out


def walk(img: RegisterImage) -> dict[int, tuple[int, list[int]]]:
    """What pysunspec2 does: 'SunS' at 40000, then [ID][L][L registers] until ID 0xFFFF."""
    assert read(img, 40000, 2) == [0x5375, 0x6E53]
    models: dict[int, tuple[int, list[int]]] = {}
    address = 40002
    while True:
        model_id, length = read(img, address, 2)
        if model_id == 0xFFFF:
            assert length == 0
            models[model_id] = (address, [])
            return models
        models[model_id] = (address, read(img, address + 2, length))
        address += 2 + length


def s16(word: int) -> int:
    return word - 0x10000 if word & 0x8000 else word


def point(body: list[int], name: str) -> list[int]:
    p = next(p for p in sunspec.METER_POINTS if p.name == name)
    return body[p.offset - 2 : p.offset - 2 + p.size]


def scaled(body: list[int], name: str, sf: str) -> float:
    return s16(point(body, name)[0]) * 10.0 ** s16(point(body, sf)[0])


def acc32(body: list[int], name: str) -> int:
    hi, lo = point(body, name)
    return hi << 16 | lo


@pytest.mark.parametrize("order", [WordOrder.BIG, WordOrder.LITTLE])
def test_walk_dual_element_meter_matches_block_a(order: WordOrder) -> None:
    core = core_after("MMD-200A", cos_phi=[0.9, 0.8])
    snap = core.snapshot()
    img = image(core, order)
    models = walk(img)
    assert list(models) == [1, 202, 0xFFFF]
    assert models[1][0] == 40002 and models[202][0] == 40070 and models[0xFFFF][0] == 40177
    common = models[1][1]
    assert len(common) == 66
    assert decode(RegisterKind.STRING, common[0:16]) == "Leviton (twin)"
    assert decode(RegisterKind.STRING, common[16:32]) == "MMD-200A"
    assert decode(RegisterKind.STRING, common[40:48]) == "twin-1.0"
    assert decode(RegisterKind.STRING, common[48:64]) == "SN-42"
    assert common[64] == 3  # DA = Modbus unit
    body = models[202][1]
    assert len(body) == 105
    sf_w = s16(point(body, "W_SF")[0])
    assert scaled(body, "W", "W_SF") == pytest.approx(snap.power_w, abs=10**sf_w / 2 + 1e-9)
    assert scaled(body, "WphA", "W_SF") == pytest.approx(snap.power_l1_w, abs=10**sf_w / 2)
    assert scaled(body, "WphB", "W_SF") == pytest.approx(snap.power_l2_w, abs=10**sf_w / 2)
    assert scaled(body, "AphA", "A_SF") == pytest.approx(60.0, abs=0.05)
    assert scaled(body, "PhVphB", "V_SF") == pytest.approx(121.0, abs=0.05)
    assert scaled(body, "PPV", "V_SF") == pytest.approx(240.0, abs=0.05)
    assert scaled(body, "Hz", "Hz_SF") == pytest.approx(60.0, abs=0.005)
    assert scaled(body, "PFphB", "PF_SF") == pytest.approx(80.0, abs=0.05)  # percent
    tot_sf = s16(point(body, "TotWh_SF")[0])
    assert tot_sf == 0
    assert acc32(body, "TotWhImp") == snap.energy_delivered_wh > 0
    assert acc32(body, "TotWhImpPhA") == snap.energy_l1_wh
    # No export registered: 0 Wh would be "not implemented", so it reads 1 (the rule).
    assert snap.energy_received_wh == 0 and acc32(body, "TotWhExp") == 1
    # Block A, read through the same image, agrees.
    a = read(img, 0, 22)
    assert decode(RegisterKind.UINT64, a[0:4], order) == acc32(body, "TotWhImp")
    block_a_w = decode(RegisterKind.FLOAT32, a[20:22], order)
    assert scaled(body, "W", "W_SF") == pytest.approx(block_a_w, abs=10**sf_w / 2 + 1e-3)
    # Phase C and unmeasured accumulators: "not implemented".
    for name in ("PhVphC", "WphC", "VAphC", "PFphC", "PhVphBC", "TotVAh_SF"):
        assert point(body, name) == [NI16], name
    assert point(body, "AphC") == [0]  # mandatory in model 202: no phase C, no current
    assert point(body, "TotVAhImp") == [0, 0]


def test_published_point_addresses() -> None:
    at = {r.name: r.address for r in REGISTERS if r.block == "D"}
    expected = {
        "ac_meter.A": 40072,
        "ac_meter.A_SF": 40076,
        "ac_meter.PhV": 40077,
        "ac_meter.PPV": 40081,
        "ac_meter.V_SF": 40085,
        "ac_meter.Hz": 40086,
        "ac_meter.W": 40088,
        "ac_meter.W_SF": 40092,
        "ac_meter.VA": 40093,
        "ac_meter.VAR": 40098,
        "ac_meter.PF": 40103,
        "ac_meter.PF_SF": 40107,
        "ac_meter.TotWhExp": 40108,
        "ac_meter.TotWhImp": 40116,
        "ac_meter.TotWh_SF": 40124,
        "ac_meter.Evt": 40175,
        "end.ID": 40177,
        "end.L": 40178,
    }
    assert {k: at[k] for k in expected} == expected


def test_single_element_meter_is_model_201() -> None:
    core = core_after("MMS-100A", current_a=20.0)
    models = walk(image(core))
    assert list(models) == [1, 201, 0xFFFF]
    body = models[201][1]
    assert s16(point(body, "A_SF")[0]) == -2  # 100 A class: 2 x 110 A fits int16 at 0.01 A
    assert scaled(body, "A", "A_SF") == pytest.approx(20.0, abs=0.005)
    for name in ("AphB", "PhVphB", "PPV", "WphB", "PFphB"):
        assert point(body, name) == [NI16], name
    assert acc32(body, "TotWhImp") == core.snapshot().energy_delivered_wh


def test_accumulators_are_monotonic_and_scale_factors_fit() -> None:
    core = core_after("MMD-200A", minutes=1)
    last = -1
    for _ in range(5):
        core.advance(SampleBlock.build(600, 1.0, current_a=200.0))
        body = walk(image(core))[202][1]
        now = acc32(body, "TotWhImp")
        assert now > last
        last = now
    # Full rated current on both elements at maximum voltage still fits the int16 points.
    core.advance(SampleBlock.build(10, 1.0, voltage_v=138.0, current_a=220.0))
    body = walk(image(core))[202][1]
    assert scaled(body, "W", "W_SF") == pytest.approx(core.snapshot().power_w, abs=5.0)
    big = sunspec.ScaleFactors.for_model(MeterModel.parse("MMU-0.1A:5000"))
    assert big.tot_wh >= 2 and big.a >= 0
    assert sunspec.ScaleFactors.for_model(MeterModel.parse("MMD-200A")).tot_wh == 0


def test_events_map_status_bits() -> None:
    core = core_after("MMD-200A", minutes=1, cos_phi=[-0.9, 0.9])
    snap = core.snapshot()
    assert snap.status_bits & (1 << StatusBit.REVERSE_L1)
    hi, lo = point(walk(image(core))[202][1], "Evt")
    evt = hi << 16 | lo
    assert evt & (1 << 16) and not evt & (1 << 17)  # OEM01 = reversed CT L1
    assert sunspec.events(1 << StatusBit.UNPOWERED) == 1 << 2  # Power_Failure
    assert sunspec.events(1 << StatusBit.OVER_VOLTAGE) == 1 << 6
    assert sunspec.events(1 << StatusBit.UNDER_VOLTAGE) == 1 << 3
    assert sunspec.events(1 << StatusBit.PF_BELOW_RANGE) == 1 << 4
    assert sunspec.events(1 << StatusBit.OVER_CURRENT) == 1 << 5
    assert sunspec.events(1 << StatusBit.REVERSE_L2) == 1 << 17
    assert sunspec.events(0) == 0


def test_unpowered_meter_reads_not_implemented_power_factor() -> None:
    core = MeterCore(MeterConfig())
    core.advance(SampleBlock.build(10, 1.0, voltage_v=0.0))
    body = walk(image(core))[202][1]
    assert point(body, "PF") == [NI16]
    assert point(body, "PFphA") == [NI16]
    assert not math.isnan(scaled(body, "W", "W_SF"))
    hi, lo = point(body, "Evt")
    assert (hi << 16 | lo) & (1 << 2)  # Power_Failure
