"""Compiled profile segments: pure functions from local sample times to meter inputs.

Every node has a ``duration_us`` and ``evaluate(t0_us, dt_us, n)``, which returns the
:class:`Inputs` for samples at local times ``t0_us + i*dt_us`` (all inside
``[0, duration_us)``: the caller splits at wrap-arounds with :func:`evaluate_wrapped`).
Times are integer microseconds so a sample's value depends only on its own time,
never on where a block starts: sampling is split-invariant by construction.

A :class:`Level` is what the YAML says about the meter's inputs at one instant: per
element the voltage, the current or the power (negative power = export, i.e. current
180 degrees from voltage), the power factor and whether current leads; plus frequency
and temperature. Constant segments return (2, 1) arrays that the sampler broadcasts
for free; ramps and periodic segments blend two levels with a weight w(t) in 0..1;
daily curves interpolate hourly points with weekday/weekend curves and a seasonal
factor; CSV series hold or interpolate their rows. Composition (sequence, repeat,
sum) nests any of these; a sum adds the parts' real and reactive power per element at
the first part's voltage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import numpy as np

from twin.core import FloatArray

DAY_US = 86_400_000_000
HOURS_S = np.arange(25, dtype=np.float64) * 3600.0
#: Mid-month day of year (0-based) for the seasonal factor, wrapped on both sides.
MID_MONTH_DAY = np.array([15.5 + 30.42 * k for k in range(-1, 13)], dtype=np.float64)


@dataclass(slots=True)
class Inputs:
    """Arrays broadcastable to (2, n) per element, and to (n,) per sample."""

    voltage_v: Any
    current_a: Any
    cos_phi: Any
    leading: Any
    frequency_hz: Any
    temperature_c: Any


@dataclass(frozen=True, slots=True)
class Load:
    """One element at one instant. ``power_w`` set means current is derived from it."""

    voltage_v: float = 120.0
    current_a: float = 0.0
    power_w: float | None = None
    pf: float = 1.0
    leading: bool = False


@dataclass(frozen=True, slots=True)
class Level:
    l1: Load = field(default_factory=Load)
    l2: Load = field(default_factory=Load)
    frequency_hz: float = 60.0
    temperature_c: float = 25.0


class Node(Protocol):
    @property
    def duration_us(self) -> int: ...

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs: ...

    def max_current_a(self) -> tuple[float, float]:
        """An upper bound of each line's current (L1, L2) over the node, in A."""
        ...


def times_s(t0_us: int, dt_us: int, n: int) -> FloatArray:
    """Local sample times in seconds, exact per sample (integer us, then scaled)."""
    return (t0_us + np.arange(n, dtype=np.int64) * dt_us) / 1e6


def element(voltage: Any, amount: Any, is_power: bool, pf: Any) -> tuple[Any, Any]:
    """(current_a, cos_phi) of one element; a power is split into |I| and the sign of cos."""
    if not is_power:
        return amount, pf
    apparent_va = np.multiply(voltage, pf)
    safe = np.where(apparent_va > 0, apparent_va, 1.0)
    current = np.where(apparent_va > 0, np.abs(amount) / safe, 0.0)
    return current, np.where(np.less(amount, 0), np.negative(pf), pf)


def pair(a: Any, b: Any, n: int) -> Any:
    """Stack two per-element values into (2, 1) when both are scalars, else (2, n)."""
    if np.ndim(a) == 0 and np.ndim(b) == 0:
        return np.array([[a], [b]], dtype=np.result_type(a, b, np.float64))
    return np.stack([np.broadcast_to(a, (n,)), np.broadcast_to(b, (n,))])


def load_current_bound(load: Load) -> float:
    if load.power_w is None:
        return load.current_a
    if load.voltage_v <= 0:
        return 0.0
    return abs(load.power_w) / (load.voltage_v * load.pf)


def level_inputs(level: Level, n: int) -> Inputs:
    cur, cos, volts = [], [], []
    for load in (level.l1, level.l2):
        amount = load.current_a if load.power_w is None else load.power_w
        c, k = element(load.voltage_v, amount, load.power_w is not None, load.pf)
        cur.append(float(c))
        cos.append(float(k))
        volts.append(load.voltage_v)
    return Inputs(
        voltage_v=pair(volts[0], volts[1], n),
        current_a=pair(cur[0], cur[1], n),
        cos_phi=pair(cos[0], cos[1], n),
        leading=np.array([[level.l1.leading], [level.l2.leading]]),
        frequency_hz=np.float64(level.frequency_hz),
        temperature_c=np.float64(level.temperature_c),
    )


# -------------------------------------------------------------------- leaves


@dataclass(frozen=True, slots=True)
class Constant:
    duration_us: int
    level: Level
    _inputs: Inputs = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_inputs", level_inputs(self.level, 1))

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        return self._inputs

    def max_current_a(self) -> tuple[float, float]:
        return load_current_bound(self.level.l1), load_current_bound(self.level.l2)


class Shape(StrEnum):
    """How a :class:`Blend` moves between its two levels: a ramp, or a periodic waveform."""

    RAMP = "ramp"
    SINE = "sine"
    SQUARE = "square"


@dataclass(frozen=True, slots=True)
class Blend:
    """Between two levels with a weight w(t): ramp (linear), sine or square (periodic)."""

    duration_us: int
    start: Level
    end: Level
    shape: Shape = Shape.RAMP
    period_us: int = 0
    duty: float = 0.5

    def weight(self, t0_us: int, dt_us: int, n: int) -> FloatArray:
        if self.shape is Shape.RAMP:
            return times_s(t0_us, dt_us, n) / (self.duration_us / 1e6)
        phase_us = (t0_us + np.arange(n, dtype=np.int64) * dt_us) % self.period_us
        if self.shape is Shape.SQUARE:
            return (phase_us < self.duty * self.period_us).astype(np.float64)
        return np.asarray(0.5 - 0.5 * np.cos(phase_us * (2.0 * math.pi / self.period_us)))

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        w = self.weight(t0_us, dt_us, n)

        def mix(a: float, b: float) -> Any:
            return np.float64(a) if a == b else a + (b - a) * w

        cur, cos, volts, lead = [], [], [], []
        for a, b in ((self.start.l1, self.end.l1), (self.start.l2, self.end.l2)):
            is_power = a.power_w is not None
            amount = mix(a.power_w, b.power_w or 0.0) if is_power else mix(a.current_a, b.current_a)  # type: ignore[arg-type]
            v = mix(a.voltage_v, b.voltage_v)
            c, k = element(v, amount, is_power, mix(a.pf, b.pf))
            cur.append(c)
            cos.append(k)
            volts.append(v)
            lead.append(a.leading if a.leading == b.leading else w >= 0.5 if b.leading else w < 0.5)
        return Inputs(
            voltage_v=pair(volts[0], volts[1], n),
            current_a=pair(cur[0], cur[1], n),
            cos_phi=pair(cos[0], cos[1], n),
            leading=pair(lead[0], lead[1], n),
            frequency_hz=mix(self.start.frequency_hz, self.end.frequency_hz),
            temperature_c=mix(self.start.temperature_c, self.end.temperature_c),
        )

    def max_current_a(self) -> tuple[float, float]:
        bound = []
        for a, b in ((self.start.l1, self.end.l1), (self.start.l2, self.end.l2)):
            if a.power_w is None:
                bound.append(max(a.current_a, b.current_a))
            else:
                volts, pf = min(a.voltage_v, b.voltage_v), min(a.pf, b.pf)
                watts = max(abs(a.power_w), abs(b.power_w or 0.0))
                bound.append(watts / (volts * pf) if volts > 0 else 0.0)
        return bound[0], bound[1]
