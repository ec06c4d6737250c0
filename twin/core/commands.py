"""Commands into the core: frozen, validated on creation, applied by ``MeterCore.apply``.

They are what register block C writes, ``twin.control`` and profile events mean:
reset maximum demand, start a new demand sub-interval, clear pulse counts, clear
energy, inject or clear a meter error, change the block C settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from twin.core.limits import CALIBRATION_ERROR_RANGE_PCT, DEFAULT_CALIBRATION_ERROR_PCT


class MeterErrorKind(Enum):
    """Meter errors a command or profile event can inject (error codes 1 and 2)."""

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
    """Raise a meter error until cleared.

    A calibration error also makes registration wrong by ``error_pct`` percent
    (default ``DEFAULT_CALIBRATION_ERROR_PCT``) while it is active, so it can drive
    a negative test; a memory error takes no size.
    """

    kind: MeterErrorKind
    error_pct: float | None = None

    def __post_init__(self) -> None:
        kind = _error_kind(self.kind)
        object.__setattr__(self, "kind", kind)
        pct = self.error_pct
        if pct is None:
            return
        if kind is not MeterErrorKind.CALIBRATION:
            raise ValueError(f"error_pct: given for a {kind.value} error; only calibration has one")
        lo, hi = CALIBRATION_ERROR_RANGE_PCT
        if (
            isinstance(pct, bool)
            or not isinstance(pct, int | float)
            or not (math.isfinite(pct) and lo <= pct <= hi)
        ):
            raise ValueError(f"error_pct: {pct!r} out of range; expected {lo:g}..{hi:g} %")

    @property
    def calibration_error_pct(self) -> float:
        """The registration error this injection causes (0 for a memory error)."""
        if self.kind is not MeterErrorKind.CALIBRATION:
            return 0.0
        return DEFAULT_CALIBRATION_ERROR_PCT if self.error_pct is None else float(self.error_pct)


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
