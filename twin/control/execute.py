"""`execute`: a validated command applied to a running twin, the same for every channel.

Theory of operation
-------------------
Control sees the twin only through :class:`ControlTarget` (``twin.runtime.Twin``
satisfies it; control never imports the runtime). :func:`execute`

1. checks the locks on the twin's config: every command is a write and needs
   ``allow_writes``; ``clear_energy`` also needs ``allow_energy_reset``;
2. finds the addressed meters: one by serial, or (``serial=None``) every meter;
3. checks what depends on each meter's present state (a demand setting is checked
   against the meter's other demand settings, by the core's `validate_demand_settings`)
   for EVERY addressed meter before it changes ANY, so a refusal changes nothing;
4. applies it and answers a :class:`~twin.control.commands.Result`.

It never raises for a refusal: the reason is the Result's ``error``, the same text
whichever channel asked (a Modbus write turns it into exception 03). Fleet-wide
commands: ``set_speed`` always is; ``add_fault`` without a serial arms one fault for
the whole twin, with a serial one narrowed to that meter (its unit id on its port and
on the RTU line); ``clear_faults`` with an ``id`` disarms that fault, without one every
fault of the twin (no serial) or every fault narrowed to the meter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from twin.control.commands import (
    AddFault,
    ClearFaults,
    ClearLoad,
    CommandName,
    ControlCommand,
    CoreCommand,
    Result,
    SetLoad,
    SetSpeed,
    SwitchProfile,
)
from twin.control.parse import command_name, parse_command
from twin.core import Command, Event, Reconfigure, Snapshot, validate_demand_settings
from twin.errors import CommandRefused
from twin.loadprofile import Profile
from twin.modbus.faults import FaultInjector, FaultSpec

WRITES_LOCKED = "writes are locked; start the twin with --allow-writes (allow_writes=True)"
ENERGY_RESET_LOCKED = (
    "energy reset is locked; start the twin with --allow-energy-reset (allow_energy_reset=True)"
)


class Locks(Protocol):
    """The twin's config, as far as control cares."""

    @property
    def allow_writes(self) -> bool: ...

    @property
    def allow_energy_reset(self) -> bool: ...


class MeterPlace(Protocol):
    """Where a meter answers: its TCP port (None: RTU only) and unit id."""

    @property
    def port(self) -> int | None: ...

    @property
    def unit(self) -> int: ...


class MeterTarget(Protocol):
    """One meter of a running twin (``twin.runtime.meters.LiveMeter``)."""

    @property
    def serial(self) -> str: ...

    @property
    def spec(self) -> MeterPlace: ...

    @property
    def snapshot(self) -> Snapshot: ...

    def apply(self, command: Command) -> list[Event]: ...

    def set_load(self, load: SetLoad) -> None: ...

    def clear_load(self) -> None: ...

    def switch_profile(self, profile: Profile) -> None: ...


class FaultTarget(Protocol):
    """The twin's protocol faults (``twin.modbus.hooks.WireHooks``)."""

    @property
    def faults(self) -> FaultInjector: ...

    def add_fault(self, spec: FaultSpec) -> int: ...

    def remove_fault(self, fault_id: int) -> bool: ...

    def clear_faults(self) -> None: ...


class ControlTarget(Protocol):
    """What control needs of a running twin (``twin.runtime.Twin`` satisfies it)."""

    @property
    def config(self) -> Locks: ...

    @property
    def meters(self) -> Sequence[MeterTarget]: ...

    def meter_by_serial(self, serial: str) -> MeterTarget | None: ...

    @property
    def hooks(self) -> FaultTarget: ...

    def served_port(self, port: int | None) -> int | None:
        """The TCP port listened on for meters configured on ``port`` (``0``: the port
        the OS chose); what a fault narrowed to one meter must name."""
        ...

    def set_speed(self, speed: float) -> None:
        """Change the clock's speed; raises CommandRefused (manual clock, too fast)."""
        ...


def execute(target: ControlTarget, command: ControlCommand, *, serial: str | None = None) -> Result:
    """Apply ``command`` to meter ``serial`` (None: every meter); never raises a refusal."""
    name = str(command.name)
    try:
        if not target.config.allow_writes:
            raise CommandRefused(f"{name}: {WRITES_LOCKED}")
        if command.name is CommandName.CLEAR_ENERGY and not target.config.allow_energy_reset:
            raise CommandRefused(f"{name}: {ENERGY_RESET_LOCKED}")
        data = _apply(target, command, _addressed(target, serial), serial)
    except CommandRefused as exc:
        return Result(ok=False, command=name, error=str(exc))
    return Result(ok=True, command=name, data=data)


def run_command(
    target: ControlTarget,
    name: str,
    body: Mapping[str, object] | None = None,
    *,
    serial: str | None = None,
) -> Result:
    """Parse and execute: what MQTT, HTTP and Modbus writes call. Never raises a refusal."""
    try:
        command = parse_command(name, body)
    except CommandRefused as exc:
        try:
            shown = str(command_name(name))
        except CommandRefused:
            shown = str(name)
        return Result(ok=False, command=shown, error=str(exc))
    return execute(target, command, serial=serial)


class Controller:
    """``twin.control``: the commands of one running twin, bound to it."""

    def __init__(self, target: ControlTarget) -> None:
        self.target = target

    def run(
        self, name: str, body: Mapping[str, object] | None = None, *, serial: str | None = None
    ) -> Result:
        """:func:`run_command` on this twin."""
        return run_command(self.target, name, body, serial=serial)

    def execute(self, command: ControlCommand, *, serial: str | None = None) -> Result:
        """:func:`execute` on this twin."""
        return execute(self.target, command, serial=serial)


def _addressed(target: ControlTarget, serial: str | None) -> list[MeterTarget]:
    if serial is None:
        return list(target.meters)
    meter = target.meter_by_serial(serial)
    if meter is None:
        raise CommandRefused(f"no meter with serial {serial!r}")
    return [meter]


def _apply(
    target: ControlTarget,
    command: ControlCommand,
    meters: list[MeterTarget],
    serial: str | None,
) -> dict[str, object] | None:
    match command:
        case CoreCommand(command=core):
            if isinstance(core, Reconfigure):
                for meter in meters:  # every meter first: a refusal changes nothing
                    check_demand(str(command.name), meter.snapshot, core)
            for meter in meters:
                meter.apply(core)
        case SetLoad():
            for meter in meters:
                meter.set_load(command)
        case ClearLoad():
            for meter in meters:
                meter.clear_load()
        case SwitchProfile(profile=profile):
            for meter in meters:
                meter.switch_profile(profile)
        case AddFault(fault=fault):
            if serial is not None:
                fault = _for_meter(target, fault, meters[0])
            return {"fault_id": target.hooks.add_fault(fault)}
        case ClearFaults(fault_id=fault_id):
            _clear_faults(target, fault_id, meters[0] if serial is not None else None)
        case SetSpeed(speed=speed):
            target.set_speed(speed)
    return None


def check_demand(where: str, snapshot: Snapshot, change: Reconfigure) -> None:
    """Refuse a demand change the core would refuse, merged with the meter's present
    settings; the rules are the core's (`validate_demand_settings`)."""

    def pick(new: int | None, old: int) -> int:
        return old if new is None else new

    try:
        validate_demand_settings(
            pick(change.demand_interval_min, snapshot.demand_interval_min),
            pick(change.demand_subintervals, snapshot.demand_subintervals),
            pick(change.demand_method, int(snapshot.demand_method)),
            pick(change.demand_max_window_h, snapshot.demand_max_window_h),
            pick(change.registration_mode, int(snapshot.registration_mode)),
        )
    except ValueError as exc:
        raise CommandRefused(f"{where}: {exc}") from None


def _for_meter(target: ControlTarget, fault: FaultSpec, meter: MeterTarget) -> FaultSpec:
    return fault.for_meter(target.served_port(meter.spec.port), meter.spec.unit)


def _clear_faults(target: ControlTarget, fault_id: int | None, meter: MeterTarget | None) -> None:
    name, hooks = CommandName.CLEAR_FAULTS, target.hooks
    if fault_id is not None:
        if not hooks.remove_fault(fault_id):
            armed = ", ".join(map(str, hooks.faults.active)) or "none"
            raise CommandRefused(f"{name}: no armed fault with id {fault_id}; armed: {armed}")
    elif meter is None:
        hooks.clear_faults()
    else:
        for armed_id, spec in hooks.faults.active.items():
            if spec == _for_meter(target, spec, meter):
                hooks.remove_fault(armed_id)
