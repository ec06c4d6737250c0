"""The meter's instantaneous readings: what it measured in the last powered sample.

Energies and counters are registers that accumulate; the readings are not: they
are the last sample's rms voltage, current, real power, power factor and lead/lag
per element, and the line frequency and temperature. The snapshot reports them as
block A's instantaneous registers. A single-element meter has no L2: its L2
readings are NaN ("not available" in the register map).
"""

from __future__ import annotations

from typing import NamedTuple

from twin.core.samples import FloatArray, SampleBlock

_NAN = float("nan")


class Readings(NamedTuple):
    voltage_l1_v: float
    voltage_l2_v: float
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
        return cls(
            voltage_l1_v=float(block.voltage_v[0, i]),
            voltage_l2_v=float(block.voltage_v[1, i]) if two else _NAN,
            current_l1_a=float(block.current_a[0, i]),
            current_l2_a=float(block.current_a[1, i]) if two else _NAN,
            power_l1_w=float(power_w[0, i]),
            power_l2_w=float(power_w[1, i]) if two else _NAN,
            pf_abs_l1=abs(float(block.cos_phi[0, i])),
            pf_abs_l2=abs(float(block.cos_phi[1, i])) if two else _NAN,
            leading_l1=bool(block.leading[0, i]),
            leading_l2=bool(block.leading[1, i]) if two else False,
            frequency_hz=float(block.frequency_hz[i]),
            temperature_c=float(block.temperature_c[i]),
        )


#: Before the first sample.
INITIAL_READINGS = Readings(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False, False, 60.0, 25.0)
