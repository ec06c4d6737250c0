"""Composition of profile segments: sequence, repeat and sum, and the wrap-around helper.

A window of samples may cross child boundaries or a node's own end. The boundaries
are found arithmetically (first sample at or after a boundary is
``ceil((boundary - t0) / dt)``), so a block that stays inside one constant segment
is returned as the segment's (2, 1) arrays with no per-sample work; a block that
crosses boundaries is assembled by :func:`concat`. Everything is integer
microseconds, so results never depend on how a window is split.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from twin.loadprofile.segments import Inputs, Node


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _full(value: Any, shape: tuple[int, ...], dtype: type) -> Any:
    return np.broadcast_to(np.asarray(value, dtype=dtype), shape)


def concat(parts: list[tuple[Inputs, int]]) -> Inputs:
    """Join (inputs, n) pieces in time order into one Inputs of sum(n) samples."""
    if len(parts) == 1:
        return parts[0][0]

    def join(attr: str, per_element: bool, dtype: type) -> Any:
        arrays = [
            _full(getattr(inp, attr), (2, n) if per_element else (n,), dtype) for inp, n in parts
        ]
        return np.concatenate(arrays, axis=-1)

    return Inputs(
        voltage_v=join("voltage_v", True, np.float64),
        current_a=join("current_a", True, np.float64),
        cos_phi=join("cos_phi", True, np.float64),
        leading=join("leading", True, np.bool_),
        frequency_hz=join("frequency_hz", False, np.float64),
        temperature_c=join("temperature_c", False, np.float64),
    )


def evaluate_wrapped(node: Node, t0_us: int, dt_us: int, n: int) -> list[tuple[Inputs, int]]:
    """Pieces for samples at ``t0 + i*dt`` with times taken modulo the node's duration."""
    period = node.duration_us
    parts: list[tuple[Inputs, int]] = []
    i = 0
    while i < n:
        local = (t0_us + i * dt_us) % period
        m = min(n - i, ceil_div(period - local, dt_us))
        parts.append((node.evaluate(local, dt_us, m), m))
        i += m
    return parts


@dataclass(frozen=True, slots=True)
class Sequence:
    children: tuple[Node, ...]
    starts_us: tuple[int, ...] = field(init=False)
    duration_us: int = field(init=False)

    def __post_init__(self) -> None:
        starts, t = [], 0
        for child in self.children:
            starts.append(t)
            t += child.duration_us
        object.__setattr__(self, "starts_us", tuple(starts))
        object.__setattr__(self, "duration_us", t)

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        parts: list[tuple[Inputs, int]] = []
        i = 0
        k = bisect.bisect_right(self.starts_us, t0_us) - 1
        while i < n:
            start = self.starts_us[k]
            end = start + self.children[k].duration_us
            local = t0_us + i * dt_us - start
            m = min(n - i, ceil_div(end - start - local, dt_us))
            if m > 0:
                parts.append((self.children[k].evaluate(local, dt_us, m), m))
                i += m
            k += 1
        return concat(parts)

    def max_current_a(self) -> tuple[float, float]:
        bounds = [child.max_current_a() for child in self.children]
        return max(b[0] for b in bounds), max(b[1] for b in bounds)


@dataclass(frozen=True, slots=True)
class Repeat:
    child: Node
    count: int
    duration_us: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "duration_us", self.child.duration_us * self.count)

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        return concat(evaluate_wrapped(self.child, t0_us, dt_us, n))

    def max_current_a(self) -> tuple[float, float]:
        return self.child.max_current_a()


@dataclass(frozen=True, slots=True)
class Sum:
    """Parts evaluated at the same time (each repeating over the sum's duration).

    Real and reactive power add per element; the result is expressed at the first
    part's voltage, frequency and temperature.
    """

    parts: tuple[Node, ...]
    duration_us: int

    def evaluate(self, t0_us: int, dt_us: int, n: int) -> Inputs:
        evaluated = [concat(evaluate_wrapped(p, t0_us, dt_us, n)) for p in self.parts]
        first = evaluated[0]
        volts = np.broadcast_to(first.voltage_v, (2, n))
        p_w = np.zeros((2, n))
        q_var = np.zeros((2, n))
        for inp in evaluated:
            va = np.broadcast_to(inp.voltage_v, (2, n)) * inp.current_a
            cos = np.broadcast_to(inp.cos_phi, (2, n))
            sin = np.sqrt(np.maximum(1.0 - cos * cos, 0.0))
            p_w += va * cos
            q_var += np.where(inp.leading, -sin, sin) * va
        s_va = np.hypot(p_w, q_var)
        pf = np.where(s_va > 0, np.abs(p_w) / np.where(s_va > 0, s_va, 1.0), 1.0)
        current = np.where(volts > 0, s_va / np.where(volts > 0, volts, 1.0), 0.0)
        cos_phi = np.where(p_w < 0, -pf, pf)
        return Inputs(
            voltage_v=volts,
            current_a=current,
            cos_phi=cos_phi,
            leading=q_var < 0,
            frequency_hz=first.frequency_hz,
            temperature_c=first.temperature_c,
        )

    def max_current_a(self) -> tuple[float, float]:
        bounds = [p.max_current_a() for p in self.parts]
        return sum(b[0] for b in bounds), sum(b[1] for b in bounds)
