"""Load profiles: the scenarios that drive the meter, and their pure samplers.

A profile is a YAML file (schema 1, see docs/profiles.md) found by shipped name
(``residential-day``, from the package ``twin.shipped_profiles``) or by path. It is
read and validated once (:func:`load_profile`) into a frozen :class:`Profile`;
invalid files raise :class:`~twin.errors.ProfileError` naming file, line, key path
and what was expected.

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

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from twin.core import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_VOLTAGE_V,
    SUPPLY_MIN_V,
    Command,
    FloatArray,
    SampleBlock,
)
from twin.errors import ProfileError
from twin.loadprofile.compose import ceil_div, concat
from twin.loadprofile.events import ProfileEvent, apply_events, commands
from twin.loadprofile.load import parse_profile
from twin.loadprofile.reader import parse_yaml
from twin.loadprofile.schema import NoiseSpec, ProfileSpec
from twin.loadprofile.segments import Inputs

SHIPPED_PACKAGE = "twin.shipped_profiles"
DEFAULT_PROFILE = "default"


@dataclass(frozen=True, slots=True)
class EnergyStats:
    """Integral of a sampler over a window (sum_then_clamp registration)."""

    l1_wh: float  # signed: negative when the line exports
    l2_wh: float
    total_wh: float  # integral of max(P1 + P2, 0) while powered
    peak_w: float  # largest P1 + P2 while powered


@dataclass(frozen=True)
class Profile:
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
                inp = _apply_noise(inp, self._noise, self.seed, t0_us + i * dt_us, dt_us, m)
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

    def stats(self, dt_s: float, t0_s: float = 0.0, duration_s: float | None = None) -> EnergyStats:
        dt_us = round(dt_s * 1e6)
        total_n = round((self.duration_s if duration_s is None else duration_s) * 1e6) // dt_us
        t0_us = round(t0_s * 1e6)
        e1 = e2 = et = 0.0
        peak = 0.0
        chunk = max(1, 86_400_000_000 // dt_us)
        for start in range(0, total_n, chunk):
            m = min(chunk, total_n - start)
            inp = self._inputs(t0_us + start * dt_us, dt_us, m)
            p = np.broadcast_to(inp.voltage_v * inp.current_a * inp.cos_phi, (2, m))
            powered = np.broadcast_to(np.max(inp.voltage_v, axis=0) >= SUPPLY_MIN_V, (m,))
            p = np.where(powered, p, 0.0)
            net = p[0] + p[1]
            e1 += float(p[0].sum())
            e2 += float(p[1].sum())
            et += float(np.maximum(net, 0.0).sum())
            peak = max(peak, float(net.max()))
        scale = dt_us / 1e6 / 3600.0
        return EnergyStats(e1 * scale, e2 * scale, et * scale, peak)

    def energy_wh(
        self, dt_s: float, t0_s: float = 0.0, duration_s: float | None = None
    ) -> tuple[float, float, float]:
        """(L1, L2, total) Wh over the window: L1/L2 signed, total = max(P1+P2, 0) powered."""
        s = self.stats(dt_s, t0_s, duration_s)
        return s.l1_wh, s.l2_wh, s.total_wh


# -------------------------------------------------------------------- noise

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: Any) -> Any:
    """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def noise_unit(seed: int, stream: int, buckets: Any) -> FloatArray:
    """Uniform in [-1, 1) per bucket index; a pure function of (seed, stream, bucket)."""
    key = _mix64(np.array([(seed * 1_000_003 + stream) & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))
    z = _mix64(np.asarray(buckets).astype(np.uint64) ^ key)
    unit: FloatArray = (z >> np.uint64(11)).astype(np.float64) * (2.0**-52) - 1.0
    return unit


def _apply_noise(
    inp: Inputs, noise: tuple[NoiseSpec, ...], seed: int, t0_us: int, dt_us: int, n: int
) -> Inputs:
    t_us = t0_us + np.arange(n, dtype=np.int64) * dt_us
    out = Inputs(**{k: getattr(inp, k) for k in Inputs.__dataclass_fields__})
    for k, spec in enumerate(noise):
        buckets = t_us // spec.period_us
        for line in spec.lines:
            u = noise_unit(seed, k * 4 + line, buckets) * spec.amplitude
            _add_noise(out, spec, line, u, n)
    return out


def _noisy(value: Any, u: FloatArray, relative: bool, lo: float, hi: float) -> FloatArray:
    noisy = value * (1.0 + u) if relative else value + u
    clipped: FloatArray = np.clip(noisy, lo, hi)
    return clipped


def _add_noise(out: Inputs, spec: NoiseSpec, line: int, u: FloatArray, n: int) -> None:
    q = spec.quantity
    if q in ("frequency", "temperature"):
        attr = "frequency_hz" if q == "frequency" else "temperature_c"
        lo, hi = (0.0, 100.0) if q == "frequency" else (-60.0, 150.0)
        setattr(
            out, attr, _noisy(np.broadcast_to(getattr(out, attr), (n,)), u, spec.relative, lo, hi)
        )
        return
    attr = {"voltage": "voltage_v", "current": "current_a", "power": "current_a", "pf": "cos_phi"}[
        q
    ]
    arr = np.array(np.broadcast_to(getattr(out, attr), (2, n)))
    if q == "voltage":
        arr[line] = _noisy(arr[line], u, spec.relative, 0.0, ABSOLUTE_MAX_VOLTAGE_V)
    elif q in ("current", "power"):
        arr[line] = _noisy(arr[line], u, spec.relative, 0.0, ABSOLUTE_MAX_CURRENT_A)
    else:
        sign = np.where(arr[line] < 0, -1.0, 1.0)
        arr[line] = sign * _noisy(np.abs(arr[line]), u, spec.relative, 0.0, 1.0)
    setattr(out, attr, arr)


# ------------------------------------------------------------------ loading


def _shipped_dir() -> Any:
    return resources.files(SHIPPED_PACKAGE)


def shipped_names() -> list[str]:
    return sorted(
        p.name[: -len(".yaml")] for p in _shipped_dir().iterdir() if p.name.endswith(".yaml")
    )


def load_profile(ref: str | os.PathLike[str]) -> Profile:
    """A shipped profile by name (``residential-day``) or a profile file by path."""
    text_ref = os.fspath(ref)
    is_path = (
        isinstance(ref, os.PathLike)
        or os.sep in text_ref
        or "/" in text_ref
        or text_ref.endswith((".yaml", ".yml"))
    )
    if is_path:
        path = Path(text_ref)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ProfileError(f"{text_ref}: cannot read: {exc.strerror or exc}") from None

        def read(name: str) -> tuple[str, str]:
            target = path.parent / name
            try:
                return target.read_text(encoding="utf-8"), str(target)
            except OSError as exc:
                raise ProfileError(f"cannot read {target}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ProfileError(f"cannot read {target}: not UTF-8 text") from None

        return _load(raw, text_ref, text_ref, read)
    names = shipped_names()
    if text_ref not in names:
        raise ProfileError(
            f"profile {text_ref!r}: no such shipped profile; expected a path or one of "
            f"{', '.join(names)}"
        )
    folder = _shipped_dir()
    label = f"profiles/{text_ref}.yaml"

    def read_shipped(name: str) -> tuple[str, str]:
        try:
            return folder.joinpath(name).read_text(encoding="utf-8"), f"profiles/{name}"
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"cannot read profiles/{name}: {exc}") from None

    return _load(folder.joinpath(f"{text_ref}.yaml").read_bytes(), label, text_ref, read_shipped)


def _load(raw: bytes, label: str, source: str, read: Any) -> Profile:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{label}: not a text file; expected UTF-8 YAML") from None
    if "\x00" in text:
        raise ProfileError(f"{label}: not a text file; expected UTF-8 YAML")
    spec = parse_profile(parse_yaml(text, label), label, read)
    return Profile(
        name=spec.name,
        description=spec.description,
        duration_s=spec.root.duration_us / 1e6,
        source=source,
        spec=spec,
    )


def shipped_profiles() -> list[Profile]:
    return [load_profile(name) for name in shipped_names()]
