"""A validated profile and its pure sampler: the meter's inputs at any time.

A :class:`Profile` is what :func:`twin.loadprofile.load_profile` returns for a
YAML file (schema 1, see docs/profiles.md); reading files is
:mod:`~twin.loadprofile.shipped`'s job, never this module's.

``profile.sampler(seed)`` compiles it into a :class:`Sampler`: a pure function of
absolute time (no IO, no wall clock, no global RNG). ``block(t0, dt, n)`` gives the
core's :class:`~twin.core.SampleBlock` for samples at ``t0 + i*dt`` (value at the start
of each sample); past the end the profile repeats, so a live twin can run forever.
Times are handled as integer microseconds and noise is a counter-based hash of
(seed, noise index, line, time bucket), so a block equals the concatenation of any
split of it, exactly. Command events (error inject/clear, demand reset, clear pulse
counts) come from ``commands_between``; :func:`twin.drive.drive` applies them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twin.core import Command, SampleBlock
from twin.loadprofile.compose import ceil_div, concat
from twin.loadprofile.events import ProfileEvent, apply_events, commands
from twin.loadprofile.noise import apply_noise
from twin.loadprofile.schema import ProfileSpec
from twin.loadprofile.segments import Inputs


@dataclass(frozen=True)
class Profile:
    """A validated profile: name, description, length and the compiled spec."""

    name: str
    description: str
    duration_s: float
    source: str  # file path, or the shipped name
    spec: ProfileSpec = field(repr=False, compare=False)

    @property
    def events(self) -> tuple[ProfileEvent, ...]:
        return self.spec.events

    def sampler(self, seed: int | None = None) -> Sampler:
        return Sampler(self.spec, self.spec.seed if seed is None else seed)


class Sampler:
    """Pure: the meter inputs of a profile at any absolute time (repeating)."""

    def __init__(self, spec: ProfileSpec, seed: int) -> None:
        self._root = spec.root
        self._period_us = spec.root.duration_us
        self.duration_s = self._period_us / 1e6
        self._events = spec.events
        self._commands = commands(spec.events)
        self._noise = spec.noise
        self.seed = seed

    def _inputs(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        parts: list[tuple[Inputs, int]] = []
        i = 0
        while i < n:
            local = (t0_us + i * dt_us) % self._period_us
            m = min(n - i, ceil_div(self._period_us - local, dt_us))
            inp = self._root.evaluate(local, dt_us, m)
            if self._noise:
                inp = apply_noise(inp, self._noise, self.seed, t0_us + i * dt_us, dt_us, m)
            parts.append((apply_events(inp, self._events, local, dt_us, m), m))
            i += m
        return concat(parts)

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        dt_us = round(dt_s * 1e6)
        if dt_us < 1:
            raise ValueError(f"dt_s: {dt_s!r} invalid; expected at least 1e-06 s")
        inp = self._inputs(round(t0_s * 1e6), dt_us, n)
        return SampleBlock.build(
            n,
            dt_us / 1e6,
            voltage_v=inp.voltage_v,
            current_a=inp.current_a,
            cos_phi=inp.cos_phi,
            leading=inp.leading,
            frequency_hz=inp.frequency_hz,
            temperature_c=inp.temperature_c,
        )

    def commands_between(self, t0_s: float, t1_s: float) -> list[tuple[float, Command]]:
        """Command events with absolute times in [t0, t1), repeating like block()."""
        t0_us, t1_us = round(t0_s * 1e6), round(t1_s * 1e6)
        out: list[tuple[float, Command]] = []
        if not self._commands or t1_us <= t0_us:
            return out
        period = self._period_us
        for lap in range(t0_us // period - 1, t1_us // period + 1):
            for at_us, cmd in self._commands:
                t_us = lap * period + at_us
                if t0_us <= t_us < t1_us:
                    out.append((t_us / 1e6, cmd))
        return out
