"""The meter's instantaneous readings: what it measured in the last powered sample.

Energies and counters are registers that accumulate; the readings are not: they
are the last sample's rms voltage, current, real power, power factor and lead/lag
per element (as its CT sees the current: see ``wiring``), the line-to-line voltage
from the phasors, and the line frequency and temperature. The snapshot reports them
as block A's instantaneous registers. NaN means "not available" in the register
map: a single-element meter's L2 readings, and every reading of an unpowered meter
(energies and counts hold, but nothing is measured).
"""

from __future__ import annotations

from typing import NamedTuple

from twin.core.samples import FloatArray, SampleBlock
from twin.core.wiring import element_at, line_to_line_v

_NAN = float("nan")


class Readings(NamedTuple):
    voltage_l1_v: float
    voltage_l2_v: float
    voltage_l1_l2_v: float
    current_l1_a: float
    current_l2_a: float
    power_l1_w: float
    power_l2_w: float
    pf_abs_l1: float  # |cos phi|; the snapshot hides it below the starting current
    pf_abs_l2: float
    leading_l1: bool
    leading_l2: bool
    frequency_hz: float
    temperature_c: float

    @classmethod
    def at(cls, block: SampleBlock, power_w: FloatArray, i: int, elements: int) -> Readings:
        """The readings of sample ``i`` of ``block``; ``power_w`` is per element (els, n)."""
        two = elements == 2
        i1, pf1, lead1 = element_at(block, 0, i)
        i2, pf2, lead2 = element_at(block, 1, i) if two else (_NAN, _NAN, False)
        # .item: a Python float at once, with no numpy scalar in between.
        v1 = float(block.voltage_v.item(0, i))
        v2 = float(block.voltage_v.item(1, i)) if two else _NAN
        return cls(
            voltage_l1_v=v1,
            voltage_l2_v=v2,
            voltage_l1_l2_v=line_to_line_v(v1, v2, block.line_angle_deg) if two else _NAN,
            current_l1_a=i1,
            current_l2_a=i2,
            power_l1_w=float(power_w.item(0, i)),
            power_l2_w=float(power_w.item(1, i)) if two else _NAN,
            pf_abs_l1=abs(pf1),
            pf_abs_l2=abs(pf2),
            leading_l1=lead1,
            leading_l2=lead2,
            frequency_hz=float(block.frequency_hz.item(i)),
            temperature_c=float(block.temperature_c.item(i)),
        )


#: An unpowered meter measures nothing (and a new one has measured nothing yet).
UNPOWERED_READINGS = Readings(
    voltage_l1_v=_NAN,
    voltage_l2_v=_NAN,
    voltage_l1_l2_v=_NAN,
    current_l1_a=_NAN,
    current_l2_a=_NAN,
    power_l1_w=_NAN,
    power_l2_w=_NAN,
    pf_abs_l1=_NAN,
    pf_abs_l2=_NAN,
    leading_l1=False,
    leading_l2=False,
    frequency_hz=_NAN,
    temperature_c=_NAN,
)
