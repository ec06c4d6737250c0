"""Profile events: faults that modify the sampled inputs, and commands sent to the meter.

Input events hold over ``[at, at + duration)`` of profile time and are applied by
the sampler after the segments are evaluated: an outage puts 0 V (and 0 A) on both
lines; a sag or swell sets a line's voltage; a reversed CT or a CT on the wrong
phase flips the sign of that line's cos(phi) (voltage and current 180 degrees
apart on a split-phase service); a surge sets or multiplies a line's current; a
frequency or temperature excursion sets that quantity.

Command events (memory/calibration error inject and clear, demand reset, clear
pulse counts) are not inputs: :meth:`twin.loadprofile.sampler.Sampler.commands_between` lists
them with their times and :func:`twin.drive.drive` applies them to the core at that
time. An error event with a duration is cleared at its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from twin.core import (
    ClearError,
    ClearPulseCounts,
    Command,
    InjectError,
    MeterErrorKind,
    ResetMaxDemand,
)
from twin.loadprofile.compose import ceil_div
from twin.loadprofile.segments import Inputs

#: kind -> (needs a duration, takes a line, value key or None)
INPUT_KINDS: dict[str, tuple[bool, bool, str | None]] = {
    "outage": (True, False, None),
    "sag": (True, True, "voltage"),
    "swell": (True, True, "voltage"),
    "ct_reversed": (True, True, None),
    "ct_wrong_phase": (True, True, None),
    "surge": (True, True, "current"),
    "frequency": (True, False, "hz"),
    "temperature": (True, False, "celsius"),
}
COMMAND_KINDS = ("memory_error", "calibration_error", "demand_reset", "clear_pulse_counts")
EVENT_KINDS = (*INPUT_KINDS, *COMMAND_KINDS)
_ERROR_KIND = {
    "memory_error": MeterErrorKind.MEMORY,
    "calibration_error": MeterErrorKind.CALIBRATION,
}


@dataclass(frozen=True, slots=True)
class ProfileEvent:
    kind: str
    at_us: int
    duration_us: int = 0  # 0: instantaneous (commands) or until the profile ends (errors)
    lines: tuple[int, ...] = (0, 1)  # element indexes affected
    value: float | None = None  # volts (sag/swell), amperes (surge), Hz, °C
    factor: float | None = None  # surge as a multiple of the load current

    @property
    def end_us(self) -> int:
        return self.at_us + self.duration_us

    def describe(self) -> str:
        from twin.loadprofile.schema import format_duration

        text = f"{format_duration(self.at_us / 1e6)} {self.kind}"
        if self.kind in INPUT_KINDS and INPUT_KINDS[self.kind][1]:
            text += " " + "+".join(f"L{i + 1}" for i in self.lines)
        if self.value is not None:
            text += f" {self.value:g}"
        if self.factor is not None:
            text += f" x{self.factor:g}"
        if self.duration_us:
            text += f" for {format_duration(self.duration_us / 1e6)}"
        return text


def commands(events: tuple[ProfileEvent, ...]) -> list[tuple[int, Command]]:
    """(profile time in us, command) for the command events, sorted by time."""
    out: list[tuple[int, Command]] = []
    for ev in events:
        if ev.kind in _ERROR_KIND:
            out.append((ev.at_us, InjectError(_ERROR_KIND[ev.kind])))
            if ev.duration_us:
                out.append((ev.end_us, ClearError(_ERROR_KIND[ev.kind])))
        elif ev.kind == "demand_reset":
            out.append((ev.at_us, ResetMaxDemand()))
        elif ev.kind == "clear_pulse_counts":
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
        if ev.kind not in INPUT_KINDS:
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
            case "outage":
                out.get("voltage_v")[:, window] = 0.0
                out.get("current_a")[:, window] = 0.0
            case "sag" | "swell":
                out.get("voltage_v")[lines, window] = ev.value
            case "ct_reversed" | "ct_wrong_phase":
                out.get("cos_phi")[lines, window] *= -1.0
            case "surge":
                amps = out.get("current_a")
                if ev.factor is not None:
                    amps[lines, window] *= ev.factor
                else:
                    amps[lines, window] = ev.value
            case "frequency":
                out.get("frequency_hz")[window] = ev.value
            case "temperature":
                out.get("temperature_c")[window] = ev.value
    return inputs if out is None else out.inputs
