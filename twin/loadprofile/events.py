"""Profile events: faults that modify the sampled inputs, and commands sent to the meter.

Input events hold over ``[at, at + duration)`` of profile time and are applied by
the sampler after the segments are evaluated: an outage puts 0 V (and 0 A) on both
lines; a sag or swell sets a line's voltage; a surge sets or multiplies a line's
current; a frequency or temperature excursion sets that quantity. A reversed CT or
a CT on the wrong phase changes no input: it changes what the meter measures, so
:mod:`~twin.loadprofile.wiring` turns it into the core's per-sample CT placement.

Command events (memory/calibration error inject and clear, demand reset, clear
pulse counts) are not inputs: :meth:`twin.loadprofile.Sampler.commands_between` lists
them with their times and :func:`twin.drive.drive` applies them to the core at that
time. An error event with a duration is cleared at its end; a calibration error
makes registration wrong by its ``percent`` while it is active (the core's default
size when none is given).

:class:`EventKind` is the one table of event kinds; :data:`EVENT_RULES` says per
kind which keys it takes, and :func:`parse_event` validates an ``events`` entry
against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

import numpy as np

from twin.core import (
    ABSOLUTE_MAX_CURRENT_A,
    CALIBRATION_ERROR_RANGE_PCT,
    ClearError,
    ClearPulseCounts,
    Command,
    InjectError,
    MeterErrorKind,
    ResetMaxDemand,
)
from twin.loadprofile.compose import ceil_div
from twin.loadprofile.levels import (
    parse_current,
    parse_duration_us,
    parse_frequency,
    parse_temperature,
    parse_voltage,
    to_us,
)
from twin.loadprofile.reader import Ctx
from twin.loadprofile.segments import Inputs
from twin.units import format_duration


class EventKind(StrEnum):
    OUTAGE = "outage"
    SAG = "sag"
    SWELL = "swell"
    CT_REVERSED = "ct_reversed"
    CT_WRONG_PHASE = "ct_wrong_phase"
    SURGE = "surge"
    FREQUENCY = "frequency"
    TEMPERATURE = "temperature"
    MEMORY_ERROR = "memory_error"
    CALIBRATION_ERROR = "calibration_error"
    DEMAND_RESET = "demand_reset"
    CLEAR_PULSE_COUNTS = "clear_pulse_counts"


@dataclass(frozen=True, slots=True)
class EventRule:
    """What an event kind takes: an input event modifies samples, a command does not."""

    is_input: bool
    needs_duration: bool = False
    takes_duration: bool = True
    takes_line: bool = False
    value_key: str | None = None  # the key holding its value: volts, amperes, Hz, °C


EVENT_RULES: Final[dict[EventKind, EventRule]] = {
    EventKind.OUTAGE: EventRule(True, needs_duration=True),
    EventKind.SAG: EventRule(True, needs_duration=True, takes_line=True, value_key="voltage"),
    EventKind.SWELL: EventRule(True, needs_duration=True, takes_line=True, value_key="voltage"),
    EventKind.CT_REVERSED: EventRule(True, needs_duration=True, takes_line=True),
    EventKind.CT_WRONG_PHASE: EventRule(True, needs_duration=True, takes_line=True),
    EventKind.SURGE: EventRule(True, needs_duration=True, takes_line=True, value_key="current"),
    EventKind.FREQUENCY: EventRule(True, needs_duration=True, value_key="hz"),
    EventKind.TEMPERATURE: EventRule(True, needs_duration=True, value_key="celsius"),
    EventKind.MEMORY_ERROR: EventRule(False),
    EventKind.CALIBRATION_ERROR: EventRule(False, value_key="percent"),
    EventKind.DEMAND_RESET: EventRule(False, takes_duration=False),
    EventKind.CLEAR_PULSE_COUNTS: EventRule(False, takes_duration=False),
}
#: Input events that change what the meter measures, not its inputs (see ``wiring``).
WIRING_KINDS: Final = (EventKind.CT_WRONG_PHASE, EventKind.CT_REVERSED)
ERROR_KINDS: Final = {
    EventKind.MEMORY_ERROR: MeterErrorKind.MEMORY,
    EventKind.CALIBRATION_ERROR: MeterErrorKind.CALIBRATION,
}
EVENT_KEYS: Final = ("at", "kind", "duration", "line", "voltage", "current", "factor", "hz",
                     "celsius", "percent")  # fmt: skip
LINES: Final = {"L1": (0,), "L2": (1,), "both": (0, 1)}


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    kind: EventKind
    at_us: int
    duration_us: int = 0  # 0: instantaneous (commands) or until the profile ends (errors)
    lines: tuple[int, ...] = (0, 1)  # element indexes affected
    value: float | None = None  # volts (sag/swell), amperes (surge), Hz, °C, % (calibration)
    factor: float | None = None  # surge as a multiple of the load current

    @property
    def end_us(self) -> int:
        return self.at_us + self.duration_us

    def describe(self) -> str:
        text = f"{format_duration(self.at_us / 1e6)} {self.kind}"
        if EVENT_RULES[self.kind].takes_line:
            text += " " + "+".join(f"L{i + 1}" for i in self.lines)
        if self.value is not None:
            unit = "%" if self.kind is EventKind.CALIBRATION_ERROR else ""
            text += f" {self.value:+g}{unit}" if unit else f" {self.value:g}"
        if self.factor is not None:
            text += f" x{self.factor:g}"
        if self.duration_us:
            text += f" for {format_duration(self.duration_us / 1e6)}"
        return text


def commands(events: tuple[ProfileEvent, ...]) -> list[tuple[int, Command]]:
    """(profile time in us, command) for the command events, sorted by time."""
    out: list[tuple[int, Command]] = []
    for ev in events:
        if ev.kind in ERROR_KINDS:
            out.append((ev.at_us, InjectError(ERROR_KINDS[ev.kind], ev.value)))
            if ev.duration_us:
                out.append((ev.end_us, ClearError(ERROR_KINDS[ev.kind])))
        elif ev.kind is EventKind.DEMAND_RESET:
            out.append((ev.at_us, ResetMaxDemand()))
        elif ev.kind is EventKind.CLEAR_PULSE_COUNTS:
            out.append((ev.at_us, ClearPulseCounts()))
    out.sort(key=lambda item: item[0])
    return out


class _Writable:
    """Copies an Inputs' arrays to full writable shape on first write only."""

    def __init__(self, inputs: Inputs, n: int) -> None:
        self.inputs = inputs
        self.n = n
        self.done: set[str] = set()

    def get(self, attr: str) -> Any:
        if attr not in self.done:
            shape = (self.n,) if attr in ("frequency_hz", "temperature_c") else (2, self.n)
            value = getattr(self.inputs, attr)
            setattr(self.inputs, attr, np.array(np.broadcast_to(value, shape)))
            self.done.add(attr)
        return getattr(self.inputs, attr)


def apply_events(
    inputs: Inputs, events: tuple[ProfileEvent, ...], t0_us: int, dt_us: int, n: int
) -> Inputs:
    """Inputs with the input events over samples at local times t0 + i*dt applied."""
    out: _Writable | None = None
    for ev in events:
        if not EVENT_RULES[ev.kind].is_input or ev.kind in WIRING_KINDS:
            continue
        j0 = max(0, ceil_div(ev.at_us - t0_us, dt_us))
        j1 = min(n, ceil_div(ev.end_us - t0_us, dt_us))
        if j0 >= j1:
            continue
        if out is None:
            out = _Writable(
                Inputs(
                    inputs.voltage_v,
                    inputs.current_a,
                    inputs.cos_phi,
                    inputs.leading,
                    inputs.frequency_hz,
                    inputs.temperature_c,
                ),
                n,
            )
        lines = list(ev.lines)
        window = slice(j0, j1)
        match ev.kind:
            case EventKind.OUTAGE:
                out.get("voltage_v")[:, window] = 0.0
                out.get("current_a")[:, window] = 0.0
            case EventKind.SAG | EventKind.SWELL:
                out.get("voltage_v")[lines, window] = ev.value
            case EventKind.SURGE:
                amps = out.get("current_a")
                if ev.factor is not None:
                    amps[lines, window] *= ev.factor
                else:
                    amps[lines, window] = ev.value
            case EventKind.FREQUENCY:
                out.get("frequency_hz")[window] = ev.value
            case EventKind.TEMPERATURE:
                out.get("temperature_c")[window] = ev.value
    return inputs if out is None else out.inputs


# ------------------------------------------------------------------- parsing


def parse_event(ctx: Ctx, value: Any, duration_us: int, max_current_a: float) -> ProfileEvent:
    """One ``events`` entry of a profile ``duration_us`` long whose load peaks at
    ``max_current_a`` (a surge factor must keep the current in range)."""
    data = ctx.mapping(value, "an event mapping with at and kind")
    ctx.keys(data, EVENT_KEYS, ("at", "kind"))
    kind = ctx.at("kind", data).member(data["kind"], EventKind)
    rule = EVENT_RULES[kind]
    allowed = {"at", "kind"} | ({"duration"} if rule.takes_duration else set())
    if rule.takes_line:
        allowed.add("line")
    if rule.value_key:
        allowed.add(rule.value_key)
    if kind is EventKind.SURGE:
        allowed.add("factor")
    ctx.keys(data, sorted(allowed), ["duration"] if rule.needs_duration else [])
    at_us = to_us(ctx.at("at", data).duration_s(data["at"], allow_zero=True))
    dur_us = parse_duration_us(ctx, data) if "duration" in data else 0
    if at_us >= duration_us:
        ctx.at("at", data).fail(
            f"{format_duration(at_us / 1e6)} is outside the profile; "
            f"expected a time before its end at {format_duration(duration_us / 1e6)}"
        )
    if at_us + dur_us > duration_us:
        ctx.at("duration", data).fail(
            f"event ends at {format_duration((at_us + dur_us) / 1e6)}, after the profile "
            f"(length {format_duration(duration_us / 1e6)}); expected it to end within the profile"
        )
    lines: tuple[int, ...] = (0, 1)
    if rule.takes_line:
        if "line" not in data:
            ctx.fail("missing required key 'line'; expected L1, L2 or both")
        lines = LINES[ctx.at("line", data).choice(data["line"], LINES)]
    val: float | None = None
    factor: float | None = None
    if kind in (EventKind.SAG, EventKind.SWELL):
        if "voltage" not in data:
            ctx.fail(f"missing required key 'voltage'; expected the {kind} voltage in V")
        val = parse_voltage(ctx.at("voltage", data), data["voltage"])
    elif kind is EventKind.SURGE:
        if ("current" in data) == ("factor" in data):
            ctx.fail("expected exactly one of current (A) or factor (multiple of the load)")
        if "current" in data:
            val = parse_current(ctx.at("current", data), data["current"])
        else:
            fctx = ctx.at("factor", data)
            factor = fctx.number(data["factor"], 0, 1000)
            if factor * max_current_a > ABSOLUTE_MAX_CURRENT_A:
                fctx.fail(
                    f"x{factor:g} takes the current to {factor * max_current_a:.6g} A; expected "
                    f"at most {ABSOLUTE_MAX_CURRENT_A:g} A"
                )
    elif kind is EventKind.FREQUENCY:
        if "hz" not in data:
            ctx.fail("missing required key 'hz'; expected the frequency in Hz")
        val = parse_frequency(ctx.at("hz", data), data["hz"])
    elif kind is EventKind.TEMPERATURE:
        if "celsius" not in data:
            ctx.fail("missing required key 'celsius'; expected the temperature in °C")
        val = parse_temperature(ctx.at("celsius", data), data["celsius"])
    elif kind is EventKind.CALIBRATION_ERROR and "percent" in data:
        val = ctx.at("percent", data).number(data["percent"], *CALIBRATION_ERROR_RANGE_PCT, "%")
    return ProfileEvent(kind, at_us, dur_us, lines, val, factor)


def check_overlaps(ctx: Ctx, data: Any, events: list[ProfileEvent], duration_us: int) -> None:
    """Same-kind events on a common line must not overlap (or two outages, two resets)."""

    def span(ev: ProfileEvent) -> tuple[int, int]:
        if ev.duration_us:
            return ev.at_us, ev.end_us
        # An error without a duration stays until the profile ends; commands are instants.
        return ev.at_us, duration_us if ev.kind in ERROR_KINDS else ev.at_us + 1

    for j, ev in enumerate(events):
        for i in range(j):
            other = events[i]
            if other.kind != ev.kind or not set(other.lines) & set(ev.lines):
                continue
            (a0, a1), (b0, b1) = span(ev), span(other)
            if a0 < b1 and b0 < a1:
                ctx.at(j, data).fail(
                    f"{ev.kind} overlaps events[{i}] ({other.describe()}); expected "
                    "events of one kind on one line not to overlap"
                )
