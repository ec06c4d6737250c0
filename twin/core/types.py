"""Value objects at the core's boundary: input blocks, commands, events, snapshots.

Inputs come as a :class:`SampleBlock` of ``n`` equally spaced samples. Per element
(L1, L2): rms voltage, rms current (primary amperes), the signed power factor
``cos_phi`` (negative when voltage and current are more than 90 degrees apart: a
reversed CT, or a CT on the wrong phase of a split-phase service) and whether the
current leads. Per sample: frequency and meter temperature. Arrays may be numpy
broadcast views (a constant segment costs no memory). ``inputs_from_angle`` turns a
phase angle into that form.

Commands go in as frozen objects; events come out as frozen objects. Pulse edges
come out as arrays per output so a year of edges costs no Python objects per edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.core.models import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_FREQUENCY_HZ,
    ABSOLUTE_MAX_TEMPERATURE_C,
    ABSOLUTE_MAX_VOLTAGE_V,
    ABSOLUTE_MIN_TEMPERATURE_C,
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
        if not (isinstance(dt_s, int | float) and math.isfinite(dt_s) and 1e-6 <= dt_s <= 86_400):
            raise ValueError(f"dt_s: {dt_s!r} out of range; expected 1e-06..86400 s")
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
        _check_range("frequency_hz", block.frequency_hz, 0.0, ABSOLUTE_MAX_FREQUENCY_HZ, "Hz")
        _check_range(
            "temperature_c",
            block.temperature_c,
            ABSOLUTE_MIN_TEMPERATURE_C,
            ABSOLUTE_MAX_TEMPERATURE_C,
            "°C",
        )
        return block


def inputs_from_angle(angle_deg: npt.ArrayLike) -> tuple[FloatArray, BoolArray]:
    """(cos_phi, leading) for the angle by which current lags voltage (negative leads).

    A reversed CT or a CT on the wrong phase adds 180 degrees.
    """
    a = np.asarray(angle_deg, dtype=np.float64)
    wrapped = (a + 180.0) % 360.0 - 180.0
    return np.cos(np.radians(wrapped)), np.sin(np.radians(wrapped)) < 0


# ---------------------------------------------------------------- commands


class MeterErrorKind(Enum):
    MEMORY = "memory"
    CALIBRATION = "calibration"


@dataclass(frozen=True, slots=True)
class ResetMaxDemand:
    pass


@dataclass(frozen=True, slots=True)
class NewDemandSubinterval:
    pass


@dataclass(frozen=True, slots=True)
class ClearPulseCounts:
    pass


@dataclass(frozen=True, slots=True)
class ClearEnergy:
    pass


def _error_kind(kind: object) -> MeterErrorKind:
    """Accept the enum or its value ("memory", "calibration"); anything else is bad input."""
    try:
        return MeterErrorKind(kind)
    except ValueError:
        allowed = ", ".join(k.value for k in MeterErrorKind)
        raise ValueError(f"kind: {kind!r} unknown; expected one of {allowed}") from None


@dataclass(frozen=True, slots=True)
class InjectError:
    kind: MeterErrorKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _error_kind(self.kind))


@dataclass(frozen=True, slots=True)
class ClearError:
    kind: MeterErrorKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _error_kind(self.kind))


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """Change block C settings; fields left None keep their value."""

    demand_interval_min: int | None = None
    demand_subintervals: int | None = None
    demand_method: int | None = None
    demand_max_window_h: int | None = None
    registration_mode: int | None = None


Command = (
    ResetMaxDemand
    | NewDemandSubinterval
    | ClearPulseCounts
    | ClearEnergy
    | InjectError
    | ClearError
    | Reconfigure
)

# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True, eq=False)
class PulseEdges:
    """Edges of one output in one block: times (s, core clock) and new states."""

    output: str  # "10", "100", "1000" or "counter"
    time_s: FloatArray
    closed: BoolArray

    def __len__(self) -> int:
        return int(self.time_s.shape[0])


@dataclass(frozen=True, slots=True, eq=False)
class Registration:
    """Per-sample registration of one block (only when the core is asked for it).

    ``power_w`` is the measured power per element (zero while unpowered); the
    energies are the integer microjoules each register gained in each sample.
    """

    time0_s: float
    dt_s: float
    power_w: FloatArray  # (elements, n)
    delivered_uj: IntArray
    received_uj: IntArray
    l1_uj: IntArray
    l2_uj: IntArray


@dataclass(frozen=True, slots=True)
class DemandClosed:
    time_s: float
    subinterval_kw: float
    demand_kw: float
    demand_max_kw: float


@dataclass(frozen=True, slots=True)
class ErrorRaised:
    time_s: float
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class ErrorCleared:
    time_s: float
    code: int
    name: str


@dataclass(frozen=True, slots=True)
class PowerLost:
    time_s: float


@dataclass(frozen=True, slots=True)
class PowerRestored:
    time_s: float
    power_up_count: int


@dataclass(frozen=True, slots=True)
class MaxDemandReset:
    time_s: float


@dataclass(frozen=True, slots=True)
class CountsCleared:
    time_s: float
    what: str  # "pulses" or "energy"


#: Events that are one moment each (what an event log holds).
ScalarEvent = (
    DemandClosed
    | ErrorRaised
    | ErrorCleared
    | PowerLost
    | PowerRestored
    | MaxDemandReset
    | CountsCleared
)
#: Everything advance() and apply() return: scalar events plus per-block arrays.
Event = PulseEdges | Registration | ScalarEvent
