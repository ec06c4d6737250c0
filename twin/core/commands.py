"""Commands into the core: frozen, validated on creation, applied by ``MeterCore.apply``.

They are what register block C writes, ``twin.control`` and profile events mean:
reset maximum demand, start a new demand sub-interval, clear pulse counts, clear
energy, inject or clear a meter error, change the block C settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


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
