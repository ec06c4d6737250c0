"""Bounded, seeded noise on a profile's inputs: parsing the ``noise`` list and applying it.

Each entry draws a value uniform in ``+-amplitude`` (relative to the quantity when
given as a percentage), held for ``period`` (default 1 s), on one line or both.
The draw is a counter-based hash (splitmix64) of (seed, entry, line, time bucket):
no RNG state, so a sample's noise depends only on its own time and a block equals
the concatenation of any split of it. Noisy values are clipped to the core's input
ranges; noise on a power factor keeps the sign (the direction of energy flow).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any, Final

import numpy as np

from twin.core import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_VOLTAGE_V,
    INPUT_FREQUENCY_RANGE_HZ,
    INPUT_TEMPERATURE_RANGE_C,
    FloatArray,
)
from twin.loadprofile.levels import parse_duration_us
from twin.loadprofile.reader import Ctx
from twin.loadprofile.segments import Inputs


class NoiseQuantity(StrEnum):
    VOLTAGE = "voltage"
    CURRENT = "current"
    POWER = "power"  # relative only: scales the current
    PF = "pf"
    FREQUENCY = "frequency"
    TEMPERATURE = "temperature"


#: Quantities that belong to one line (``L1.current``); the others are per meter.
PER_LINE: Final = (NoiseQuantity.VOLTAGE, NoiseQuantity.CURRENT, NoiseQuantity.POWER,
                   NoiseQuantity.PF)  # fmt: skip
#: Largest absolute amplitude per quantity.
MAX_AMPLITUDE: Final = {
    NoiseQuantity.VOLTAGE: ABSOLUTE_MAX_VOLTAGE_V,
    NoiseQuantity.CURRENT: ABSOLUTE_MAX_CURRENT_A,
    NoiseQuantity.POWER: 1.0,
    NoiseQuantity.PF: 1.0,
    NoiseQuantity.FREQUENCY: 50.0,
    NoiseQuantity.TEMPERATURE: 100.0,
}
DEFAULT_PERIOD_US: Final = 1_000_000
_LINE_INDEX: Final = {"L1": (0,), "L2": (1,)}
#: Inputs attribute and clip range per quantity.
_TARGET: Final = {
    NoiseQuantity.VOLTAGE: ("voltage_v", 0.0, ABSOLUTE_MAX_VOLTAGE_V),
    NoiseQuantity.CURRENT: ("current_a", 0.0, ABSOLUTE_MAX_CURRENT_A),
    NoiseQuantity.POWER: ("current_a", 0.0, ABSOLUTE_MAX_CURRENT_A),
    NoiseQuantity.PF: ("cos_phi", 0.0, 1.0),
    NoiseQuantity.FREQUENCY: ("frequency_hz", *INPUT_FREQUENCY_RANGE_HZ),
    NoiseQuantity.TEMPERATURE: (
        "temperature_c",
        *INPUT_TEMPERATURE_RANGE_C,
    ),
}


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    """Bounded noise: uniform in +-amplitude (relative when ``relative``), held per period."""

    quantity: NoiseQuantity
    lines: tuple[int, ...]
    amplitude: float
    relative: bool
    period_us: int


def parse_noise(ctx: Ctx, value: Any) -> NoiseSpec:
    """One entry of a profile's ``noise`` list."""
    data = ctx.mapping(value, "a noise mapping with quantity and amplitude")
    ctx.keys(data, ("quantity", "amplitude", "period"), ("quantity", "amplitude"))
    options = [f"{line}.{q}" for line in _LINE_INDEX for q in PER_LINE]
    options += [q.value for q in NoiseQuantity]
    name = ctx.at("quantity", data).choice(data["quantity"], options)
    lines: tuple[int, ...] = (0, 1)
    if "." in name:
        prefix, name = name.split(".")
        lines = _LINE_INDEX[prefix]
    quantity = NoiseQuantity(name)
    actx = ctx.at("amplitude", data)
    amplitude, relative = actx.percent_or_number(data["amplitude"], MAX_AMPLITUDE[quantity])
    if quantity is NoiseQuantity.POWER and not relative:
        actx.fail("absolute power noise invalid; expected a percentage such as 5%")
    period = parse_duration_us(ctx, data, "period") if "period" in data else DEFAULT_PERIOD_US
    return NoiseSpec(quantity, lines, amplitude, relative, period)


_MASK64: Final = 2**64 - 1


def _mix64(x: Any) -> Any:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def noise_unit(seed: int, stream: int, buckets: Any) -> FloatArray:
    """Uniform in [-1, 1) per bucket index; a pure function of (seed, stream, bucket)."""
    key = _mix64(np.array([(seed * 1_000_003 + stream) & _MASK64], dtype=np.uint64))
    z = _mix64(np.asarray(buckets).astype(np.uint64) ^ key)
    unit: FloatArray = (z >> np.uint64(11)).astype(np.float64) * (2.0**-52) - 1.0
    return unit


def bucket_noise(
    seed: int, stream: int, t0_us: int, dt_us: int, n: int, spec: NoiseSpec
) -> FloatArray:
    """Per sample at t0 + i*dt: what ``spec`` does to a value, from the ``noise_unit`` of
    the sample's bucket (``t // period``): the factor ``1 + u`` when relative, else the
    offset ``u`` (``u`` the unit times the amplitude).

    A bucket holds many samples when the period is longer than the step (a minute of
    one-second samples): each bucket's factor is computed once and repeated over its
    samples, the first of which is ``ceil((b * period - t0) / dt)``; the same values as
    computed per sample.
    """
    period_us = spec.period_us
    b0, b1 = t0_us // period_us, (t0_us + (n - 1) * dt_us) // period_us
    if 2 * (b1 - b0 + 1) > n:
        t_us = t0_us + np.arange(n, dtype=np.int64) * dt_us
        return _effect(noise_unit(seed, stream, t_us // period_us), spec)
    inner = np.arange(b0 + 1, b1 + 1, dtype=np.int64)
    starts = -((t0_us - inner * period_us) // dt_us)
    counts = np.diff(starts, prepend=0, append=n)
    per_bucket = _effect(noise_unit(seed, stream, np.arange(b0, b1 + 1, dtype=np.int64)), spec)
    return np.repeat(per_bucket, counts)


def _effect(unit: FloatArray, spec: NoiseSpec) -> FloatArray:
    u = unit * spec.amplitude
    return 1.0 + u if spec.relative else u


def apply_noise(
    inp: Inputs, noise: tuple[NoiseSpec, ...], seed: int, t0_us: int, dt_us: int, n: int
) -> Inputs:
    """``inp`` (samples at absolute times ``t0 + i*dt``) with every noise entry added."""
    out = Inputs(**{f.name: getattr(inp, f.name) for f in fields(Inputs)})
    copied: set[str] = set()  # (2, n) arrays already copied from the input (written in place)
    for k, spec in enumerate(noise):
        for line in spec.lines:
            effect = bucket_noise(seed, k * 4 + line, t0_us, dt_us, n, spec)
            _add_noise(out, spec, line, effect, n, copied)
    return out


def _noisy(value: Any, effect: FloatArray, relative: bool, lo: float, hi: float) -> FloatArray:
    noisy: FloatArray = value * effect if relative else value + effect
    return np.clip(noisy, lo, hi, out=noisy)


def _add_noise(
    out: Inputs, spec: NoiseSpec, line: int, effect: FloatArray, n: int, copied: set[str]
) -> None:
    attr, lo, hi = _TARGET[spec.quantity]
    if spec.quantity not in PER_LINE:
        value = np.broadcast_to(getattr(out, attr), (n,))
        setattr(out, attr, _noisy(value, effect, spec.relative, lo, hi))
        return
    if attr not in copied:
        setattr(out, attr, np.array(np.broadcast_to(getattr(out, attr), (2, n))))
        copied.add(attr)
    arr = getattr(out, attr)
    if spec.quantity is NoiseQuantity.PF:
        sign = np.where(arr[line] < 0, -1.0, 1.0)
        arr[line] = sign * _noisy(np.abs(arr[line]), effect, spec.relative, lo, hi)
    else:
        row = arr[line]  # a view: written in place
        (np.multiply if spec.relative else np.add)(row, effect, out=row)
        np.clip(row, lo, hi, out=row)
