"""The core's input: a block of equally spaced samples, validated once.

Inputs come as a :class:`SampleBlock` of ``n`` equally spaced samples. Per line
(L1, L2): rms voltage to neutral, the rms current of the load on that line (primary
amperes), the load's signed power factor ``cos_phi`` against its own line voltage
(negative when the load exports) and whether its current leads. Per sample:
frequency and meter temperature.

The wiring says what each element measures (see ``wiring``): the service's line
voltage angles (``line_angle_deg``, per block: 0/180 split phase, 0/120 for two
phases of a 120/208 V wye) and, per element and sample, which line's conductor its
CT is on (``ct_line``) and whether the CT is mounted backwards (``ct_reversed``).
Correct wiring (CT1 on L1, CT2 on L2, both forward) is the default and costs
nothing. Arrays may be numpy broadcast views (a constant segment costs no memory).
The validation's minimum and maximum of the voltages and currents are kept with
the block (``voltage_range_v``, ``current_range_a``), so measuring it need not pass
over the inputs again to find them.
``inputs_from_angle`` turns a load angle into ``cos_phi`` and ``leading``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.core.limits import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_VOLTAGE_V,
    INPUT_FREQUENCY_RANGE_HZ,
    INPUT_TEMPERATURE_RANGE_C,
    SAMPLE_PERIOD_RANGE_S,
)

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: A 120/240 V split-phase service: the lines are 180 degrees apart.
SPLIT_PHASE_DEG = (0.0, 180.0)


def _as_2n(name: str, value: npt.ArrayLike, n: int, dtype: type) -> tuple[Any, Any]:
    """(the (2, n) broadcast view, the array it views): checks run on the latter, so a
    per-line constant is checked as two values, not as 2 x n."""
    arr: Any = np.asarray(value, dtype=dtype)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[:, None]
    try:
        return np.broadcast_to(arr, (2, n)), arr
    except ValueError:
        raise ValueError(
            f"{name}: shape {arr.shape} does not fit a block of {n} samples; "
            f"expected (2, {n}), (2, 1), (2,) or a scalar"
        ) from None


def _as_n(name: str, value: npt.ArrayLike, n: int) -> tuple[FloatArray, FloatArray]:
    """(the (n,) broadcast view, the array it views)."""
    arr = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(arr, (n,)), arr
    except ValueError:
        raise ValueError(
            f"{name}: shape {arr.shape} does not fit a block of {n} samples; "
            f"expected ({n},) or a scalar"
        ) from None


def _check_range(
    name: str, arr: npt.NDArray[np.generic], lo: float, hi: float, unit: str
) -> tuple[float, float]:
    """(min, max) of the values, checked: one min and one max (over a broadcast view's
    base: every value it shows is one of them); NaN propagates through both, so it is
    caught with infinities."""
    if arr.size == 0:
        return lo, hi
    amin, amax = float(arr.min()), float(arr.max())
    if not (math.isfinite(amin) and math.isfinite(amax)):
        raise ValueError(
            f"{name}: NaN or infinite value; expected finite numbers in {lo}..{hi} {unit}"
        )
    if amin < lo or amax > hi:
        bad = amin if amin < lo else amax
        raise ValueError(f"{name}: {bad:g} out of range; expected {lo:g}..{hi:g} {unit}".rstrip())
    return amin, amax


_OWN_LINE = np.array([[0], [1]], np.int64)


@dataclass(frozen=True, slots=True, eq=False)
class SampleBlock:
    """``n`` samples, each ``dt_s`` long; arrays validated and broadcast on creation."""

    dt_s: float
    voltage_v: FloatArray  # (2, n)
    current_a: FloatArray  # (2, n)
    cos_phi: FloatArray  # (2, n), -1..1
    leading: BoolArray  # (2, n)
    frequency_hz: FloatArray  # (n,)
    temperature_c: FloatArray  # (n,)
    line_angle_deg: tuple[float, float] = SPLIT_PHASE_DEG  # voltage angle of L1, L2
    ct_line: IntArray | None = None  # (2, n): line (0 or 1) each CT is on; None = own line
    ct_reversed: BoolArray | None = None  # (2, n); None = both forward
    # (min, max) over both lines and every sample, found by the validation: the
    # measurement's extremes of a two-element meter at no extra pass.
    voltage_range_v: tuple[float, float] | None = None
    current_range_a: tuple[float, float] | None = None

    @property
    def straight(self) -> bool:
        """True when each element sees its own line's current through a forward CT."""
        return self.ct_line is None and self.ct_reversed is None

    @property
    def n(self) -> int:
        return int(self.frequency_hz.shape[0])

    @property
    def dt_us(self) -> int:
        return round(self.dt_s * 1e6)

    @classmethod
    def build(
        cls,
        n: int,
        dt_s: float,
        voltage_v: npt.ArrayLike = 120.0,
        current_a: npt.ArrayLike = 0.0,
        cos_phi: npt.ArrayLike = 1.0,
        leading: npt.ArrayLike = False,
        frequency_hz: npt.ArrayLike = 60.0,
        temperature_c: npt.ArrayLike = 25.0,
        *,
        line_angle_deg: tuple[float, float] = SPLIT_PHASE_DEG,
        ct_line: npt.ArrayLike = (0, 1),
        ct_reversed: npt.ArrayLike = False,
    ) -> SampleBlock:
        """Validate and broadcast; raises ValueError naming the field and its range."""
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n: {n!r} invalid; expected a sample count >= 1")
        lo_s, hi_s = SAMPLE_PERIOD_RANGE_S
        if not (isinstance(dt_s, int | float) and math.isfinite(dt_s) and lo_s <= dt_s <= hi_s):
            raise ValueError(f"dt_s: {dt_s!r} out of range; expected {lo_s:g}..{hi_s:g} s")
        n = int(n)
        angles = tuple(float(a) for a in np.asarray(line_angle_deg, np.float64).reshape(-1))
        if len(angles) != 2 or not all(math.isfinite(a) for a in angles):
            raise ValueError(
                f"line_angle_deg: {line_angle_deg!r} invalid; expected two finite angles "
                "(degrees), e.g. (0, 180) split phase or (0, 120) for 120/208 V"
            )
        lines, lines_base = _as_2n("ct_line", ct_line, n, np.int64)
        if lines_base.size and (lines_base.min() < 0 or lines_base.max() > 1):
            raise ValueError("ct_line: out of range; expected 0 (L1) or 1 (L2) per CT")
        rev, rev_base = _as_2n("ct_reversed", ct_reversed, n, np.bool_)
        volts, volts_base = _as_2n("voltage_v", voltage_v, n, np.float64)
        amps, amps_base = _as_2n("current_a", current_a, n, np.float64)
        cos, cos_base = _as_2n("cos_phi", cos_phi, n, np.float64)
        lead, _ = _as_2n("leading", leading, n, np.bool_)
        freq, freq_base = _as_n("frequency_hz", frequency_hz, n)
        temp, temp_base = _as_n("temperature_c", temperature_c, n)
        voltage_range = _check_range("voltage_v", volts_base, 0.0, ABSOLUTE_MAX_VOLTAGE_V, "V")
        current_range = _check_range("current_a", amps_base, 0.0, ABSOLUTE_MAX_CURRENT_A, "A")
        _check_range("cos_phi", cos_base, -1.0, 1.0, "")
        _check_range("frequency_hz", freq_base, *INPUT_FREQUENCY_RANGE_HZ, "Hz")
        _check_range("temperature_c", temp_base, *INPUT_TEMPERATURE_RANGE_C, "°C")
        # Compared where the values live: equal to (2, 1) own lines over the base is
        # equal over the whole broadcast block.
        straight_lines = bool((lines_base == _OWN_LINE).all())
        block = cls(
            dt_s=float(dt_s),
            voltage_v=volts,
            current_a=amps,
            cos_phi=cos,
            leading=lead,
            frequency_hz=freq,
            temperature_c=temp,
            line_angle_deg=(angles[0], angles[1]),
            ct_line=None if straight_lines else lines,
            ct_reversed=rev if rev_base.any() else None,
            voltage_range_v=voltage_range,
            current_range_a=current_range,
        )
        return block


def inputs_from_angle(angle_deg: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    """(cos_phi, leading) for the angle by which current lags voltage (negative leads).

    Wiring mistakes are not angles of the load: give them as ``ct_line`` and
    ``ct_reversed`` of the block.
    """
    a = np.asarray(angle_deg, dtype=np.float64)
    wrapped = (a + 180.0) % 360.0 - 180.0
    return np.cos(np.radians(wrapped)), np.sin(np.radians(wrapped)) < 0
