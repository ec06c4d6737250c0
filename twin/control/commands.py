"""The commands a running twin accepts, as frozen objects, and the one result type.

Theory of operation
-------------------
Every channel (Modbus block-C writes, MQTT, HTTP, the pytest plugin, Python) names a
command by its :class:`CommandName` and gives a JSON-like body; `twin.control.parse`
validates that body once, against `twin.control.specs.COMMAND_SPECS`, into one of
the frozen objects below, and `twin.control.execute` applies it to a running twin
(:class:`~twin.control.execute.ControlTarget`). The answer is always a :class:`Result`:
applied, or refused with a one-line reason; a refused command changes nothing.

Commands the meter core itself understands (errors, demand, counts, energy) travel as
a :class:`CoreCommand` wrapping the core's own command object, so their meaning is the
core's; the others act on the shell around the core (load override, profile, protocol
faults, clock speed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

from twin.core import Command
from twin.loadprofile import Profile
from twin.modbus.faults import FaultSpec


class CommandName(StrEnum):
    SET_LOAD = "set_load"
    CLEAR_LOAD = "clear_load"
    SWITCH_PROFILE = "switch_profile"
    INJECT_ERROR = "inject_error"
    CLEAR_ERROR = "clear_error"
    ADD_FAULT = "add_fault"
    CLEAR_FAULTS = "clear_faults"
    RESET_MAX_DEMAND = "reset_max_demand"
    NEW_DEMAND_SUBINTERVAL = "new_demand_subinterval"
    CLEAR_PULSES = "clear_pulses"
    CLEAR_ENERGY = "clear_energy"
    SET_DEMAND = "set_demand"
    SET_SPEED = "set_speed"


@dataclass(frozen=True, slots=True)
class ElementLoad:
    """What one element (L1 or L2) sees while a load override holds."""

    voltage_v: float
    current_a: float
    pf: float = 1.0  # signed: negative when the current flows the other way (export)
    leading: bool = False


@dataclass(frozen=True, slots=True)
class CoreCommand:
    """A command of the meter core (``command``) under its control name."""

    name: CommandName
    command: Command


@dataclass(frozen=True, slots=True)
class SetLoad:
    """Replace the profile's inputs of L1 and/or L2 (None: that element keeps the
    profile) for ``for_s`` seconds of meter time (None: until cleared)."""

    name: ClassVar[CommandName] = CommandName.SET_LOAD
    l1: ElementLoad | None
    l2: ElementLoad | None
    for_s: float | None = None


@dataclass(frozen=True, slots=True)
class ClearLoad:
    name: ClassVar[CommandName] = CommandName.CLEAR_LOAD


@dataclass(frozen=True, slots=True)
class SwitchProfile:
    """Play ``profile`` (already loaded and validated) from the meter's present time."""

    name: ClassVar[CommandName] = CommandName.SWITCH_PROFILE
    profile: Profile


@dataclass(frozen=True, slots=True)
class AddFault:
    name: ClassVar[CommandName] = CommandName.ADD_FAULT
    fault: FaultSpec


@dataclass(frozen=True, slots=True)
class ClearFaults:
    """Disarm fault ``fault_id``, or (None) every fault of the addressed meter(s)."""

    name: ClassVar[CommandName] = CommandName.CLEAR_FAULTS
    fault_id: int | None = None


@dataclass(frozen=True, slots=True)
class SetSpeed:
    name: ClassVar[CommandName] = CommandName.SET_SPEED
    speed: float


ControlCommand = (
    CoreCommand | SetLoad | ClearLoad | SwitchProfile | AddFault | ClearFaults | SetSpeed
)


@dataclass(frozen=True, slots=True)
class Result:
    """What a command did: applied (``ok``), or refused with ``error`` (one line).

    ``data`` carries what an applied command returns (``add_fault``: ``fault_ids``).
    """

    ok: bool
    command: str  # a CommandName value (or the unknown name that was asked for)
    error: str | None = None
    data: dict[str, object] | None = None

    def as_json(self, correlation_id: str | None = None) -> dict[str, object]:
        """The MQTT and HTTP result shape: ok, command, id (echoed), error (and data)."""
        out: dict[str, object] = {
            "ok": self.ok,
            "command": self.command,
            "id": correlation_id,
            "error": self.error,
        }
        if self.data is not None:
            out["data"] = dict(self.data)
        return out
