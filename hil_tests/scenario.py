"""Scenarios: the inputs a test applies to a drivable target, written as a load profile.

A :class:`Scenario` is a sequence of constant segments (per line: volts, amperes,
|PF|, lead/lag; plus frequency) and profile events (outage, reversed CT, CT on the
wrong phase). The twin target plays it as a profile file (``TwinConfig(profile=path)``),
the public way to give a meter its inputs; a bench target would hand the same
numbers to its rig. The expected energy of a segment is computed here from
V·I·PF·t, independently of the meter core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.hil import Load

#: Long enough that no test reaches the profile's end (profiles repeat after it).
LAST_SEGMENT_S = 30 * 86_400


@dataclass(frozen=True, slots=True)
class Segment:
    duration_s: float
    l1: Load
    l2: Load
    frequency_hz: float = 60.0

    def power_w(self, elements: int) -> float:
        """True real power the meter sees (L2 only on a dual-element meter)."""
        return self.l1.power_w + (self.l2.power_w if elements == 2 else 0.0)


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    segments: tuple[Segment, ...]
    events: tuple[dict[str, object], ...] = field(default=())

    @classmethod
    def constant(
        cls,
        name: str,
        l1: Load,
        l2: Load | None = None,
        frequency_hz: float = 60.0,
        events: tuple[dict[str, object], ...] = (),
    ) -> Scenario:
        seg = Segment(LAST_SEGMENT_S, l1, l2 if l2 is not None else l1, frequency_hz)
        return cls(name, (seg,), events)

    def profile_yaml(self) -> str:
        def line(load: Load) -> str:
            lead = "true" if load.leading else "false"
            return (
                f"{{voltage: {load.voltage_v!r}, current: {load.current_a!r}, "
                f"pf: {load.pf!r}, leading: {lead}}}"
            )

        out = ["schema: 1", f"name: hil-{self.name.lower()}", "segments:"]
        for seg in self.segments:
            out += [
                "  - kind: constant",
                f"    duration: {seg.duration_s!r}",
                f"    L1: {line(seg.l1)}",
                f"    L2: {line(seg.l2)}",
                f"    frequency: {seg.frequency_hz!r}",
            ]
        if self.events:
            out.append("events:")
            for event in self.events:
                body = ", ".join(f"{k}: {v}" for k, v in event.items())
                out.append(f"  - {{{body}}}")
        return "\n".join(out) + "\n"
