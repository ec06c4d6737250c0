"""The core's input: a block of equally spaced samples, validated once.

Inputs come as a :class:`SampleBlock` of ``n`` equally spaced samples. Per element
(L1, L2): rms voltage, rms current (primary amperes), the signed power factor
``cos_phi`` (negative when voltage and current are more than 90 degrees apart: a
reversed CT, or a CT on the wrong phase of a split-phase service) and whether the
current leads. Per sample: frequency and meter temperature. Arrays may be numpy
broadcast views (a constant segment costs no memory). ``inputs_from_angle`` turns a
phase angle into that form.
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


def _as_2n(name: str, value: npt.ArrayLike, n: int, dtype: type) -> Any:
    arr: Any = np.asarray(value, dtype=dtype)
    if arr.ndim == 1 and arr.shape[0] == 2:
        arr = arr[:, None]
    try:
        return np.broadcast_to(arr, (2, n))
    except ValueError:
        raise ValueError(
            f"{name}: shape {arr.shape} does not fit a block of {n} samples; "
            f"expected (2, {n}), (2, 1), (2,) or a scalar"
        ) from None


def _as_n(name: str, value: npt.ArrayLike, n: int) -> FloatArray:
    arr = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(arr, (n,))
    except ValueError:
        raise ValueError(
            f"{name}: shape {arr.shape} does not fit a block of {n} samples; "
            f"expected ({n},) or a scalar"
        ) from None


def _check_range(name: str, arr: npt.NDArray[np.generic], lo: float, hi: float, unit: str) -> None:
    a = np.asarray(arr)
    if a.size == 0:
        return
    amin, amax = float(a.min()), float(a.max())
    if not (math.isfinite(amin) and math.isfinite(amax)):
        raise ValueError(
            f"{name}: NaN or infinite value; expected finite numbers in {lo}..{hi} {unit}"
        )
    if amin < lo or amax > hi:
        bad = amin if amin < lo else amax
        raise ValueError(f"{name}: {bad:g} out of range; expected {lo:g}..{hi:g} {unit}".rstrip())


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
    ) -> SampleBlock:
        """Validate and broadcast; raises ValueError naming the field and its range."""
        if not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n: {n!r} invalid; expected a sample count >= 1")
        lo_s, hi_s = SAMPLE_PERIOD_RANGE_S
        if not (isinstance(dt_s, int | float) and math.isfinite(dt_s) and lo_s <= dt_s <= hi_s):
            raise ValueError(f"dt_s: {dt_s!r} out of range; expected {lo_s:g}..{hi_s:g} s")
        n = int(n)
        block = cls(
            dt_s=float(dt_s),
            voltage_v=_as_2n("voltage_v", voltage_v, n, np.float64),
            current_a=_as_2n("current_a", current_a, n, np.float64),
            cos_phi=_as_2n("cos_phi", cos_phi, n, np.float64),
            leading=_as_2n("leading", leading, n, np.bool_),
            frequency_hz=_as_n("frequency_hz", frequency_hz, n),
            temperature_c=_as_n("temperature_c", temperature_c, n),
        )
        _check_range("voltage_v", block.voltage_v, 0.0, ABSOLUTE_MAX_VOLTAGE_V, "V")
        _check_range("current_a", block.current_a, 0.0, ABSOLUTE_MAX_CURRENT_A, "A")
        _check_range("cos_phi", block.cos_phi, -1.0, 1.0, "")
        _check_range("frequency_hz", block.frequency_hz, *INPUT_FREQUENCY_RANGE_HZ, "Hz")
        _check_range("temperature_c", block.temperature_c, *INPUT_TEMPERATURE_RANGE_C, "°C")
        return block


def inputs_from_angle(angle_deg: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    """(cos_phi, leading) for the angle by which current lags voltage (negative leads).

    A reversed CT or a CT on the wrong phase adds 180 degrees.
    """
    a = np.asarray(angle_deg, dtype=np.float64)
    wrapped = (a + 180.0) % 360.0 - 180.0
    return np.cos(np.radians(wrapped)), np.sin(np.radians(wrapped)) < 0
