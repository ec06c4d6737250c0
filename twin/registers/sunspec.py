"""SunSpec block D: the "SunS" marker, model 1 (common), model 201/202 (ac_meter), end model.

Theory of operation. Block D is one contiguous run of 179 registers at 40000..40178
(0-based PDU addresses, where SunSpec clients probe first). The static part (marker,
model 1 strings, model ID and length) is packed once per identity; the 105 registers
of the meter model are packed from a :class:`~twin.core.Snapshot` in one
``struct.pack`` call on every image rebuild.

Choices, documented in ``docs/registers.md`` too:

- Block D is always big-endian (SunSpec mandates it); ``--word-order little`` does
  not apply here, since SunSpec clients cannot be told otherwise.
- Model 201 (single phase) for single-element meters, 202 (split phase) for dual;
  phase A = element L1, phase B = element L2. Phase C and everything we do not
  measure carry the SunSpec "not implemented" values: int16/sunssf 0x8000, acc32 0.
- Model 202 marks AphC mandatory (sunspec/models ``model_202.json``, as pysunspec2
  ships it); a split-phase service has no phase C, so AphC reads 0 A there (not
  implemented while the meter is unpowered, like every current).
- Signs: W positive = power delivered to the load (import), as in block A. VAR is
  positive lagging. PF carries the sign of W (IEEE convention), in percent.
- TotWhImp = energy delivered (block A ``energy_delivered_wh``), TotWhExp = energy
  received. acc32 in Wh x 10^TotWh_SF, where TotWh_SF is the smallest exponent >= 0
  that keeps five years at the model's full rated power below 2^32 (0 for 100 A and
  200 A models). The accumulators roll over modulo 2^32 as SunSpec accumulators do.
- An acc32 of 0 is SunSpec's "not implemented" (pysunspec2 reads it as None), so an
  implemented accumulator never reads 0: a count of 0 (a new meter, TotWhExp of a
  meter that registers no export, a rollover) reads 1, the smallest implemented
  value. Above one count the value is exact; it stays monotonic (0 -> 1 -> 1 -> 2).
- While the meter is unpowered its instantaneous quantities are NaN in the snapshot
  and read "not implemented" here (int16 0x8000); accumulators and Evt hold.
- Other scale factors are fixed per model: the smallest exponent that keeps twice
  the rated value within int16 (A_SF, W_SF = VA_SF = VAR_SF), V_SF -1, Hz_SF -2, PF_SF -1.
- Evt (bitfield32, SunSpec 20x bit positions) from the status bits; see EVT_MAP.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Final

from twin.core import MeterModel, Snapshot, StatusBit
from twin.registers.codec import STRUCT_FORMATS, RegisterKind

BASE_ADDRESS: Final = 40000
MODEL1_ADDRESS: Final = 40002
METER_ADDRESS: Final = 40070
END_ADDRESS: Final = 40177
LAST_ADDRESS: Final = 40178
MODEL1_LENGTH: Final = 66
METER_LENGTH: Final = 105
REGISTER_COUNT: Final = LAST_ADDRESS - BASE_ADDRESS + 1  # 179

NOT_IMPLEMENTED_INT16: Final = -0x8000  # 0x8000 as int16, also the sunssf sentinel
NOT_IMPLEMENTED_ACC32: Final = 0

_SUPPLY_MAX_V = 138.0
_FIVE_YEARS_H = 5 * 8760.0
_V_SF, _HZ_SF, _PF_SF = -1, -2, -1


@dataclass(frozen=True, slots=True)
class Point:
    """One SunSpec point: offset in registers from the model's ID register."""

    name: str
    offset: int
    size: int
    kind: RegisterKind
    unit: str
    description: str


def _meter_points() -> tuple[Point, ...]:
    """The ac_meter (201-204) layout, in order, as in sunspec/models json/model_20x.json."""
    rows: list[tuple[str, int, str, str, str]] = []

    def group(base: str, unit: str, desc: str, kind: str = "int16", sf: str = "") -> None:
        size = 2 if kind == "acc32" else 1
        rows.append((base, size, kind, unit, desc))
        for ph in ("A", "B", "C"):
            suffix = f"Ph{ph}" if kind == "acc32" else f"ph{ph}"
            rows.append((f"{base}{suffix}", size, kind, unit, f"{desc}, phase {ph}"))
        if sf:
            rows.append((sf, 1, "sunssf", "", f"scale factor of {base}"))

    group("A", "A", "AC current")
    rows.append(("A_SF", 1, "sunssf", "", "current scale factor"))
    group("PhV", "V", "line-to-neutral voltage")
    group("PPV", "V", "line-to-line voltage")
    # PPV's phases are named PhVphAB/BC/CA in the spec, not PPVphA...
    rows[-3:] = [
        ("PhVphAB", 1, "int16", "V", "voltage AB"),
        ("PhVphBC", 1, "int16", "V", "voltage BC"),
        ("PhVphCA", 1, "int16", "V", "voltage CA"),
    ]
    rows.append(("V_SF", 1, "sunssf", "", "voltage scale factor"))
    rows.append(("Hz", 1, "int16", "Hz", "frequency"))
    rows.append(("Hz_SF", 1, "sunssf", "", "frequency scale factor"))
    group("W", "W", "real power, + = import (delivered)", sf="W_SF")
    group("VA", "VA", "apparent power", sf="VA_SF")
    group("VAR", "var", "reactive power, + = lagging", sf="VAR_SF")
    group("PF", "Pct", "power factor, sign of W", sf="PF_SF")
    group("TotWhExp", "Wh", "energy exported (received)", kind="acc32")
    group("TotWhImp", "Wh", "energy imported (delivered)", kind="acc32", sf="TotWh_SF")
    group("TotVAhExp", "VAh", "apparent energy exported", kind="acc32")
    group("TotVAhImp", "VAh", "apparent energy imported", kind="acc32", sf="TotVAh_SF")
    for q, d in (("ImpQ1", "imported Q1"), ("ImpQ2", "imported Q2")):
        group(f"TotVArh{q}", "varh", f"reactive energy {d}", kind="acc32")
    for q, d in (("ExpQ3", "exported Q3"), ("ExpQ4", "exported Q4")):
        group(f"TotVArh{q}", "varh", f"reactive energy {d}", kind="acc32")
    rows.append(("TotVArh_SF", 1, "sunssf", "", "reactive energy scale factor"))
    rows.append(("Evt", 2, "bitfield32", "", "meter event flags (see EVT_MAP)"))
    points, offset = [], 2
    for name, size, kind, unit, desc in rows:
        points.append(Point(name, offset, size, RegisterKind(kind), unit, desc))
        offset += size
    assert offset == METER_LENGTH + 2, offset
    return tuple(points)


MODEL1_POINTS: Final = tuple(
    Point(n, off, size, RegisterKind(kind), "", desc)
    for n, off, size, kind, desc in (
        ("ID", 0, 1, "uint16", "model ID (1, common)"),
        ("L", 1, 1, "uint16", "model length (66)"),
        ("Mn", 2, 16, "string", "manufacturer"),
        ("Md", 18, 16, "string", "model (catalog number)"),
        ("Opt", 34, 8, "string", "options"),
        ("Vr", 42, 8, "string", "version (firmware)"),
        ("SN", 50, 16, "string", "serial number"),
        ("DA", 66, 1, "uint16", "device (Modbus unit) address"),
        ("Pad", 67, 1, "pad", "pad"),
    )
)
METER_POINTS: Final = (
    Point("ID", 0, 1, RegisterKind.UINT16, "", "model ID: 201 single-element, 202 dual-element"),
    Point("L", 1, 1, RegisterKind.UINT16, "", "model length (105)"),
    *_meter_points(),
)

#: status bit(s) -> SunSpec 20x Evt bit (M_EVENT_*; OEM01 is bit 16).
EVT_MAP: Final[tuple[tuple[int, int, str], ...]] = (
    (
        (1 << StatusBit.VOLTAGE_MISSING_L1)
        | (1 << StatusBit.VOLTAGE_MISSING_L2)
        | (1 << StatusBit.UNPOWERED),
        2,
        "Power_Failure: voltage missing or unpowered",
    ),
    (1 << StatusBit.UNDER_VOLTAGE, 3, "Under_Voltage"),
    (1 << StatusBit.PF_BELOW_RANGE, 4, "Low_PF"),
    (1 << StatusBit.OVER_CURRENT, 5, "Over_Current"),
    (1 << StatusBit.OVER_VOLTAGE, 6, "Over_Voltage"),
    (1 << StatusBit.REVERSE_L1, 16, "OEM01: reversed CT L1"),
    (1 << StatusBit.REVERSE_L2, 17, "OEM02: reversed CT L2"),
    (1 << StatusBit.MEMORY_ERROR, 18, "OEM03: non-volatile memory error"),
    (1 << StatusBit.CALIBRATION_ERROR, 19, "OEM04: calibration error"),
    (1 << StatusBit.FREQUENCY_OUT_OF_RANGE, 20, "OEM05: frequency out of range"),
    (1 << StatusBit.TEMPERATURE_OUT_OF_RANGE, 21, "OEM06: temperature out of range"),
)


def events(status_bits: int) -> int:
    """The SunSpec Evt bitfield for a status-bits word."""
    evt = 0
    for mask, bit, _ in EVT_MAP:
        if status_bits & mask:
            evt |= 1 << bit
    return evt


def _fit_sf(max_value: float, low: int) -> int:
    """Smallest exponent >= low with max_value * 10**-sf within int16."""
    sf = low
    while max_value * 10.0**-sf > 32767:
        sf += 1
    return sf


@dataclass(frozen=True, slots=True)
class ScaleFactors:
    a: int
    v: int
    hz: int
    w: int
    pf: int
    tot_wh: int

    @classmethod
    def for_model(cls, model: MeterModel) -> ScaleFactors:
        max_w = model.elements * _SUPPLY_MAX_V * model.max_current_a
        tot_wh = 0
        while max_w * _FIVE_YEARS_H / 10**tot_wh >= 2**32:
            tot_wh += 1
        return cls(
            a=_fit_sf(2 * model.elements * model.max_current_a, -3),
            v=_V_SF,
            hz=_HZ_SF,
            w=_fit_sf(2 * max_w, -3),
            pf=_PF_SF,
            tot_wh=tot_wh,
        )


def _string(text: str, registers: int) -> bytes:
    raw = text.encode("ascii")[: 2 * registers]
    return raw.ljust(2 * registers, b"\0")


@lru_cache(maxsize=256)
def static_header(
    manufacturer: str, model_name: str, options: str, version: str, serial: str, unit_id: int
) -> bytes:
    """Registers 40000..40069: the marker and the whole of model 1 (they never change)."""
    return b"".join(
        (
            b"SunS",
            struct.pack(">HH", 1, MODEL1_LENGTH),
            _string(manufacturer, 16),
            _string(model_name, 16),
            _string(options, 8),
            _string(version, 8),
            _string(serial, 16),
            struct.pack(">HH", unit_id & 0xFFFF, 0x8000),  # DA, Pad
        )
    )


_METER_FORMAT: Final = struct.Struct(
    ">HH" + "".join(STRUCT_FORMATS[p.kind] for p in METER_POINTS[2:]) + "HH"  # end model
)
assert _METER_FORMAT.size == 2 * (LAST_ADDRESS - METER_ADDRESS + 1)

_NI = NOT_IMPLEMENTED_INT16


def _i16(x: float, mult: float) -> int:
    """x scaled by mult, rounded, clamped to int16; NaN -> not implemented."""
    if x != x:
        return _NI
    v = x * mult  # clamp before rounding: infinities cannot be rounded
    return 32767 if v >= 32767 else (-32767 if v <= -32767 else round(v))


def _acc32(wh: int, divisor: int) -> int:
    """An implemented acc32: Wh in counts of ``divisor``, modulo 2^32, never 0 (see above)."""
    return ((wh // divisor) & 0xFFFFFFFF) or 1


def meter_model(snap: Snapshot, model: MeterModel, sf: ScaleFactors) -> bytes:
    """Registers 40070..40178: model 201/202 from the snapshot, then the end model."""
    dual = model.elements == 2
    nan = math.nan
    v1, i1, p1 = snap.voltage_l1_v, snap.current_l1_a, snap.power_l1_w
    v2, i2, p2 = (snap.voltage_l2_v, snap.current_l2_a, snap.power_l2_w) if dual else (nan,) * 3
    ind = snap.indicators
    va1 = v1 * i1
    va2 = v2 * i2 if dual else nan
    var1 = math.sqrt(max(va1 * va1 - p1 * p1, 0.0)) * (-1.0 if ind & (1 << 7) else 1.0)
    var2 = (
        math.sqrt(max(va2 * va2 - p2 * p2, 0.0)) * (-1.0 if ind & (1 << 8) else 1.0)
        if dual
        else nan
    )
    pf1 = math.copysign(snap.power_factor_l1, p1)
    pf2 = math.copysign(snap.power_factor_l2, p2) if dual else nan
    va = va1 + va2 if dual else va1
    pf_total = snap.power_w / va if va > 0 else nan
    ma, mv, mhz, mw, mpf = (10.0**-s for s in (sf.a, sf.v, sf.hz, sf.w, sf.pf))
    e_div = 10**sf.tot_wh
    pct = 100.0 * mpf
    return _METER_FORMAT.pack(
        202 if dual else 201,
        METER_LENGTH,
        # A, AphA, AphB, AphC, A_SF
        _i16(i1 + i2 if dual else i1, ma),
        _i16(i1, ma),
        _i16(i2, ma),
        _i16(i1 * 0.0, ma) if dual else _NI,  # AphC: see the module docstring
        sf.a,
        # PhV, PhVphA/B/C, PPV, PhVphAB/BC/CA, V_SF
        _i16((v1 + v2) / 2 if dual else v1, mv),
        _i16(v1, mv),
        _i16(v2, mv),
        _NI,
        _i16(snap.voltage_l1_l2_v if dual else nan, mv),
        _i16(snap.voltage_l1_l2_v if dual else nan, mv),
        _NI,
        _NI,
        sf.v,
        _i16(snap.frequency_hz, mhz),
        sf.hz,
        # W, VA, VAR (total, A, B, C, SF)
        _i16(snap.power_w, mw),
        _i16(p1, mw),
        _i16(p2, mw),
        _NI,
        sf.w,
        _i16(va, mw),
        _i16(va1, mw),
        _i16(va2, mw),
        _NI,
        sf.w,
        _i16(var1 + var2 if dual else var1, mw),
        _i16(var1, mw),
        _i16(var2, mw),
        _NI,
        sf.w,
        # PF in percent
        _i16(pf_total, pct),
        _i16(pf1, pct),
        _i16(pf2, pct),
        _NI,
        sf.pf,
        # TotWhExp (total, A, B, C); per-element received energy is not in the snapshot
        _acc32(snap.energy_received_wh, e_div),
        NOT_IMPLEMENTED_ACC32,
        NOT_IMPLEMENTED_ACC32,
        NOT_IMPLEMENTED_ACC32,
        _acc32(snap.energy_delivered_wh, e_div),
        _acc32(snap.energy_l1_wh, e_div),
        _acc32(snap.energy_l2_wh, e_div) if dual else NOT_IMPLEMENTED_ACC32,
        NOT_IMPLEMENTED_ACC32,
        sf.tot_wh,
        # TotVAh Exp/Imp (8), TotVAh_SF, TotVArh Q1..Q4 (16), TotVArh_SF: not implemented
        *(NOT_IMPLEMENTED_ACC32,) * 8,
        _NI,
        *(NOT_IMPLEMENTED_ACC32,) * 16,
        _NI,
        events(snap.status_bits),
        0xFFFF,
        0,
    )
