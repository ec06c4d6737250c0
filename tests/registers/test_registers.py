"""Register map v1: encoders, the map itself, the image read from a real core, exceptions."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import io
import itertools
import json
import math
import struct
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import REPO
from twin.cli import registers as cli_registers
from twin.core import (
    MeterConfig,
    MeterCore,
    MeterModel,
    SampleBlock,
    Snapshot,
    StatusBit,
)
from twin.errors import ConfigError
from twin.registers import (
    BLOCK_RANGES,
    EXTRA_DEFAULTS,
    REGISTERS,
    Identity,
    ModbusException,
    RegisterImage,
    RegisterKind,
    WordOrder,
    decode,
    device_identification,
    encode,
    field_names,
    render_table,
)

ORDERS = [WordOrder.BIG, WordOrder.LITTLE]
ROOT = REPO


def run_core(model: str = "MMD-200A", minutes: int = 20, **block: object) -> MeterCore:
    core = MeterCore(MeterConfig(model=MeterModel.parse(model), serial_number="MM12345678"))
    kw: dict[str, object] = {"voltage_v": 121.0, "current_a": [42.5, 17.25], "cos_phi": 0.92}
    kw.update(block)
    for _ in range(minutes):
        core.advance(SampleBlock.build(60, 1.0, **kw))  # type: ignore[arg-type]
    return core


def image_for(core: MeterCore, order: WordOrder = WordOrder.BIG, **kw: object) -> RegisterImage:
    ident = Identity.from_config(core.config)
    return RegisterImage.build(core.snapshot(), ident, word_order=order, **kw)  # type: ignore[arg-type]


def words(img: RegisterImage, address: int, count: int) -> list[int]:
    return list(struct.unpack(f">{count}H", img.read_registers(address, count)))


# ------------------------------------------------------------------ encoders


@pytest.mark.parametrize("order", ORDERS)
@given(
    u16=st.integers(0, 2**16 - 1),
    u32=st.integers(0, 2**32 - 1),
    u64=st.integers(0, 2**64 - 1),
    i16=st.integers(-(2**15), 2**15 - 1),
    f32=st.floats(width=32, allow_nan=False),
)
def test_numbers_round_trip(
    order: WordOrder, u16: int, u32: int, u64: int, i16: int, f32: float
) -> None:
    for kind, value in (
        (RegisterKind.UINT16, u16),
        (RegisterKind.UINT32, u32),
        (RegisterKind.UINT64, u64),
        (RegisterKind.INT16, i16),
        (RegisterKind.ACC32, u32),
        (RegisterKind.FLOAT32, f32),
    ):
        encoded = encode(kind, value, order)
        assert all(0 <= w <= 0xFFFF for w in encoded)
        assert decode(kind, encoded, order) == value


@given(text=st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=127), max_size=32))
def test_strings_round_trip_and_ignore_word_order(text: str) -> None:
    big = encode(RegisterKind.STRING, text, WordOrder.BIG, count=16)
    assert len(big) == 16
    assert encode(RegisterKind.STRING, text, WordOrder.LITTLE, count=16) == big
    assert decode(RegisterKind.STRING, big) == text


def test_word_order_swaps_words_not_bytes() -> None:
    assert encode(RegisterKind.UINT32, 0x12345678, WordOrder.BIG) == [0x1234, 0x5678]
    assert encode(RegisterKind.UINT32, 0x12345678, WordOrder.LITTLE) == [0x5678, 0x1234]
    assert encode(RegisterKind.UINT64, 0x0001000200030004, WordOrder.LITTLE) == [4, 3, 2, 1]
    assert encode(RegisterKind.FLOAT32, 1.0, WordOrder.BIG) == [0x3F80, 0x0000]
    assert encode(RegisterKind.FLOAT32, 1.0, WordOrder.LITTLE) == [0x0000, 0x3F80]
    # first char in the high byte:
    assert encode(RegisterKind.STRING, "AB", WordOrder.LITTLE) == [0x4142]
    assert encode(RegisterKind.FLOAT32, math.nan) == [0x7FC0, 0x0000]  # the "not available" NaN


def test_encode_refuses_out_of_range() -> None:
    with pytest.raises(ValueError, match="uint16"):
        encode(RegisterKind.UINT16, 70000)
    with pytest.raises(ValueError, match="longer than 2 registers"):
        encode(RegisterKind.STRING, "ABCDE", count=2)
    with pytest.raises(ValueError, match="unknown register type"):
        encode("int8", 1)


# ------------------------------------------------------------------ the map as data


def test_map_is_consistent() -> None:
    names = [r.name for r in REGISTERS]
    assert len(names) == len(set(names))
    for block in "ABCD":
        lo, hi = BLOCK_RANGES[block]
        regs = sorted((r for r in REGISTERS if r.block == block), key=lambda r: r.address)
        assert regs, block
        for a, b in itertools.pairwise(regs):
            assert a.end <= b.address, f"{a.name} overlaps {b.name}"
        assert regs[0].address >= lo and regs[-1].end - 1 <= hi
    snapshot_fields = {f.name for f in dataclasses.fields(Snapshot)}
    assert set(field_names()) == (snapshot_fields & set(field_names())) | set(EXTRA_DEFAULTS)
    assert set(field_names()) - set(EXTRA_DEFAULTS) <= snapshot_fields
    assert [r.name for r in REGISTERS if r.writable] == [
        "command",
        "demand_interval_min",
        "demand_subintervals",
        "demand_method",
        "demand_max_window_h",
        "registration_mode",
    ]
    # Published addresses never move (spot checks against REGISTER_MAP.md).
    at = {r.name: (r.address, r.count, r.kind) for r in REGISTERS}
    assert at["energy_delivered_wh"] == (0, 4, "uint64")
    assert at["power_w"] == (20, 2, "float32")
    assert at["status_bits"] == (50, 2, "uint32")
    assert at["mirror_pulses"] == (77, 2, "uint32")
    assert at["serial_number"] == (108, 16, "string")
    assert at["catalog_number"] == (132, 16, "string")
    assert at["registration_mode"] == (205, 1, "uint16")


# ------------------------------------------------------------------ the image


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("model", ["MMD-200A", "MMS-100A"])
def test_every_block_a_register_decodes_to_the_snapshot(order: WordOrder, model: str) -> None:
    core = run_core(model)
    snap = core.snapshot()
    assert snap.energy_delivered_wh > 0 and snap.pulses_10wh > 0
    img = image_for(core, order)
    for reg in REGISTERS:
        if reg.block != "A":
            continue
        value = decode(reg.kind, words(img, reg.address, reg.count), order)
        expected = getattr(snap, reg.name, EXTRA_DEFAULTS.get(reg.name))
        assert isinstance(expected, int | float)
        if reg.kind is RegisterKind.FLOAT32:
            assert isinstance(value, float)
            if math.isnan(expected):
                assert math.isnan(value), reg.name
            else:
                assert value == pytest.approx(expected, rel=1e-6, abs=1e-6), reg.name
        else:
            assert value == expected, reg.name


_A_REGS = [r for r in REGISTERS if r.block == "A" and r.name not in EXTRA_DEFAULTS]
_BASE = run_core(minutes=1).snapshot()
_VALUE = {
    RegisterKind.UINT16: st.integers(0, 2**16 - 1),
    RegisterKind.UINT32: st.integers(0, 2**32 - 1),
    RegisterKind.UINT64: st.integers(0, 2**64 - 1),
    RegisterKind.FLOAT32: st.floats(width=32),
}


@pytest.mark.parametrize("order", ORDERS)
@given(data=st.data())
def test_any_snapshot_values_round_trip_through_the_image(
    order: WordOrder, data: st.DataObject
) -> None:
    values: dict[str, Any] = {r.name: data.draw(_VALUE[r.kind], label=r.name) for r in _A_REGS}
    snap = dataclasses.replace(_BASE, **values)
    img = RegisterImage.build(snap, Identity.from_config(MeterConfig()), word_order=order)
    for reg in _A_REGS:
        got = decode(reg.kind, words(img, reg.address, reg.count), order)
        want = values[reg.name]
        if isinstance(want, float) and math.isnan(want):
            assert isinstance(got, float) and math.isnan(got), reg.name
        else:
            assert got == want, reg.name


def test_little_word_order_is_the_same_values_with_swapped_words() -> None:
    core = run_core()
    big, little = image_for(core, WordOrder.BIG), image_for(core, WordOrder.LITTLE)
    b, li = words(big, 0, 4), words(little, 0, 4)
    assert li == b[::-1] and b != li
    assert words(big, 100, 100) == words(little, 100, 100)  # identity: uint16 + strings
    assert big.read_registers(40000, 125) == little.read_registers(40000, 125)  # SunSpec


def test_identity_config_and_extras() -> None:
    core = run_core("MMU-0.2A:400/100")
    extra = {"source_mode": 1, "mirror_registration_pct": 99.5, "mirror_pulses": 77}
    img = image_for(core, extra=extra)
    assert words(img, 100, 7) == [1, 3, 2, 400, 200, 100, 0]
    assert decode(RegisterKind.STRING, words(img, 108, 16)) == "MM12345678"
    assert decode(RegisterKind.STRING, words(img, 124, 8)) == "twin-1.0"
    assert decode(RegisterKind.STRING, words(img, 132, 16)) == "MMU-0.2A:400/100"
    assert words(img, 200, 6) == [0, 15, 3, 0, 24, 0]  # command reads 0, then the defaults
    assert words(img, 70, 1) == [1]
    assert decode(RegisterKind.FLOAT32, words(img, 72, 2)) == 99.5
    not_mirroring = decode(RegisterKind.FLOAT32, words(img, 74, 2))
    assert math.isnan(float(not_mirroring))  # the default
    assert decode(RegisterKind.UINT32, words(img, 77, 2)) == 77
    with pytest.raises(ValueError, match="unknown registers"):
        image_for(core, extra={"bogus": 1})


def test_counters_that_outgrow_their_register_wrap() -> None:
    snap = dataclasses.replace(run_core(minutes=1).snapshot(), pulses_10wh=2**32 + 5)
    ident = Identity(model=MeterModel.parse("MMD-200A"), serial_number="X1")
    for order in ORDERS:
        img = RegisterImage.build(snap, ident, word_order=order, sunspec=False)
        assert decode(RegisterKind.UINT32, words(img, 56, 2), order) == 5


def test_read_exceptions_and_reserved_addresses() -> None:
    img = image_for(run_core(minutes=1))
    for address, count, code in [
        (0, 0, 3),
        (0, 126, 3),
        (300, 1, 2),
        (299, 2, 2),
        (-1, 1, 2),
        (39999, 2, 2),
        (40178, 2, 2),
        (40179, 1, 2),
        (65535, 1, 2),
    ]:
        with pytest.raises(ModbusException) as info:
            img.read_registers(address, count)
        assert info.value.code == code, (address, count)
    assert len(img.read_registers(0, 125)) == 250  # A and B in one read
    assert len(img.read_registers(175, 125)) == 250  # B, C and reserved
    assert words(img, 71, 1) == [0] and words(img, 107, 1) == [0]
    assert words(img, 206, 94) == [0] * 94
    assert len(img.read_registers(40054, 125)) == 250
    no_sunspec = image_for(run_core(minutes=1), sunspec=False)
    with pytest.raises(ModbusException) as info:
        no_sunspec.read_registers(40000, 2)
    assert info.value.code == 2


def test_bits_mirror_status_and_outputs() -> None:
    core = run_core(cos_phi=[-0.9, 0.9])  # reversed CT on L1
    snap = core.snapshot()
    assert snap.status_bits & (1 << StatusBit.REVERSE_L1)
    img = image_for(core)
    raw = img.read_bits(2, 0, 32)
    assert int.from_bytes(raw, "little") == snap.status_bits
    assert img.read_bits(2, 0, 1) == b"\x01"
    assert img.read_bits(2, 1, 3) == bytes([(snap.status_bits >> 1) & 0b111])
    assert int.from_bytes(img.read_bits(1, 0, 4), "little") == snap.output_states
    for fc, address, count, code in [
        (1, 0, 5, 2),
        (1, 4, 1, 2),
        (2, 31, 2, 2),
        (2, 0, 0, 3),
        (2, 0, 2001, 3),
        (3, 0, 1, 1),
    ]:
        with pytest.raises(ModbusException) as info:
            img.read_bits(fc, address, count)
        assert info.value.code == code


# ------------------------------------------------------------------ identity


def test_device_identification_and_identity_validation() -> None:
    ident = Identity.from_config(MeterConfig(serial_number="SN9"), unit_id=7)
    objects = device_identification(ident)
    assert objects[0] == b"Leviton (twin)"
    assert objects[1] == b"MMD-200A"
    assert objects[2] == b"twin-1.0"
    assert objects[4] == b"Mini Meter twin"
    assert ident.unit_id == 7
    with pytest.raises(ConfigError, match="firmware_version"):
        Identity(model=MeterModel.parse("MMD-200A"), serial_number="A", firmware_version="x" * 17)
    with pytest.raises(ConfigError, match="unit_id"):
        Identity(model=MeterModel.parse("MMD-200A"), serial_number="A", unit_id=300)


# ------------------------------------------------------------------ docs and CLI


def test_docs_registers_md_is_not_stale() -> None:
    committed = (ROOT / "docs" / "registers.md").read_text(encoding="utf-8")
    assert committed == render_table("md"), "docs/registers.md is stale: run `make docs`"


def test_csv_and_json_list_every_register(capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(csv.DictReader(io.StringIO(render_table("csv"))))
    assert len(rows) == len(REGISTERS)
    assert rows[0]["name"] == "energy_delivered_wh" and rows[0]["kind"] == "uint64"
    data = json.loads(render_table("json"))
    assert [d["name"] for d in data] == [r.name for r in REGISTERS]
    assert cli_registers.main(argparse.Namespace(format="json")) == 0
    assert json.loads(capsys.readouterr().out) == data
    with pytest.raises(ConfigError, match="format"):
        render_table("xml")


def test_minimeter_registers_prints_the_docs_table(capsys: pytest.CaptureFixture[str]) -> None:
    from twin.cli import main

    assert main(["registers"]) == 0
    assert capsys.readouterr().out == render_table("md")
    assert main(["registers", "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("block,address,count,kind,name,unit,access,")
