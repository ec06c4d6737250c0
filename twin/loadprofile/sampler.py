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
split of it, exactly. Each block carries the profile's wiring (the service's line
angles, each CT's line and orientation, with the CT events applied). Command
events (error inject/clear, demand reset, clear pulse counts) come from
``commands_between``; :func:`twin.drive.drive` applies them.

What the profile chooses for the meter (registration mode, demand settings) is
``profile.meter_settings`` for the front end to apply; ``profile.loads_l2()`` says
whether a single-element meter would miss part of the load, and
``profile.model_warning(model)`` words the warning every front end prints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.core import Command, MeterModel, SampleBlock, Service
from twin.loadprofile.compose import ceil_div, concat
from twin.loadprofile.events import EventKind, ProfileEvent, apply_events, commands
from twin.loadprofile.noise import NoiseQuantity, apply_noise
from twin.loadprofile.schema import ProfileSpec
from twin.loadprofile.segments import Inputs
from twin.loadprofile.settings import MeterSettings
from twin.loadprofile.wiring import Wiring, ct_arrays


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

    @property
    def wiring(self) -> Wiring:
        """The service and CT placement (before CT events)."""
        return self.spec.wiring

    @property
    def service(self) -> Service:
        return self.spec.wiring.service

    @property
    def meter_settings(self) -> MeterSettings:
        """Registration mode and demand settings the profile chooses (None: not given)."""
        return self.spec.settings

    def loads_l2(self) -> bool:
        """Whether the profile ever puts current on line L2 (an upper bound, never sampled).

        A single-element meter measures element 1 only, so such a profile loses
        part of its load on one.
        """
        if self.spec.root.max_current_a()[1] > 0:
            return True
        for ev in self.spec.events:
            surge = ev.kind is EventKind.SURGE and ev.value is not None and ev.value > 0
            if surge and 1 in ev.lines:
                return True
        return any(
            nz.quantity is NoiseQuantity.CURRENT
            and not nz.relative
            and nz.amplitude > 0
            and 1 in nz.lines
            for nz in self.spec.noise
        )

    def model_warning(self, model: MeterModel) -> str | None:
        """The one warning run, simulate and `profiles show` print, or None."""
        if model.elements > 1 or not self.loads_l2():
            return None
        return (
            f"warning: profile {self.name!r} loads L2 but {model.name} is a single-element "
            "meter: it measures L1 only, so the L2 load is not registered "
            "(use a dual-element model, e.g. MMD-200A, to register both lines)"
        )

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
        self._wiring = spec.wiring
        self.seed = seed

    def _inputs(self, t0_us: int, dt_us: int, n: int) -> tuple[Inputs, Any, Any]:
        """The inputs and the (ct_line, ct_reversed) arrays of n samples from t0."""
        parts: list[tuple[Inputs, int]] = []
        cts: list[tuple[Any, Any, int]] = []
        i = 0
        while i < n:
            local = (t0_us + i * dt_us) % self._period_us
            m = min(n - i, ceil_div(self._period_us - local, dt_us))
            inp = self._root.evaluate(local, dt_us, m)
            if self._noise:
                inp = apply_noise(inp, self._noise, self.seed, t0_us + i * dt_us, dt_us, m)
            parts.append((apply_events(inp, self._events, local, dt_us, m), m))
            cts.append((*ct_arrays(self._wiring, self._events, local, dt_us, m), m))
            i += m
        if len(cts) == 1:
            return concat(parts), cts[0][0], cts[0][1]
        line = np.concatenate([np.broadcast_to(a, (2, m)) for a, _, m in cts], axis=1)
        rev = np.concatenate([np.broadcast_to(r, (2, m)) for _, r, m in cts], axis=1)
        return concat(parts), line, rev

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        dt_us = round(dt_s * 1e6)
        if dt_us < 1:
            raise ValueError(f"dt_s: {dt_s!r} invalid; expected at least 1e-06 s")
        inp, ct_line, ct_reversed = self._inputs(round(t0_s * 1e6), dt_us, n)
        return SampleBlock.build(
            n,
            dt_us / 1e6,
            voltage_v=inp.voltage_v,
            current_a=inp.current_a,
            cos_phi=inp.cos_phi,
            leading=inp.leading,
            frequency_hz=inp.frequency_hz,
            temperature_c=inp.temperature_c,
            line_angle_deg=self._wiring.service.line_angle_deg,
            ct_line=ct_line,
            ct_reversed=ct_reversed,
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
