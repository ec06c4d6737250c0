"""Profile schema 1: validation of the YAML mapping into frozen, compiled objects.

Top level: ``schema: 1`` (newer versions are refused), ``name``, optional
``description``, ``seed`` (noise), ``defaults`` (L1/L2/frequency/temperature every
segment starts from), ``segments`` (played in sequence), ``events`` and ``noise``.
Each segment is a tagged union on ``kind``; composite kinds (sequence, repeat, sum)
nest segments and pass their own L1/L2/frequency/temperature down as defaults.
See docs/profiles.md for the full schema with one example per kind.

Every check names the file, line and key path, and says what was expected.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twin.core import ABSOLUTE_MAX_CURRENT_A, ABSOLUTE_MAX_VOLTAGE_V
from twin.loadprofile.compose import Repeat, Sequence, Sum
from twin.loadprofile.events import EVENT_KINDS, INPUT_KINDS, ProfileEvent
from twin.loadprofile.reader import Ctx, LineDict
from twin.loadprofile.segments import Blend, Constant, Level, Load, Node

SCHEMA_VERSION = 1
LEVEL_KEYS = ("L1", "L2", "frequency", "temperature")
LOAD_KEYS = ("voltage", "current", "power", "pf", "leading")
MAX_POWER_W = ABSOLUTE_MAX_VOLTAGE_V * ABSOLUTE_MAX_CURRENT_A
#: Deriving current from power needs a real voltage: below this it would explode.
POWER_MIN_VOLTAGE_V = 60.0
POWER_MIN_PF = 0.05
NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
NOISE_QUANTITIES = ("voltage", "current", "power", "pf", "frequency", "temperature")

#: Reads a file named in a profile (CSV), relative to the profile; returns (text, label).
Reader = Callable[[str], tuple[str, str]]


@dataclass(frozen=True, slots=True)
class NoiseSpec:
    """Bounded noise: uniform in +-amplitude (relative when ``relative``), held per period."""

    quantity: str  # voltage, current, power, pf, frequency, temperature
    lines: tuple[int, ...]
    amplitude: float
    relative: bool
    period_us: int


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    name: str
    description: str
    seed: int
    root: Node
    events: tuple[ProfileEvent, ...]
    noise: tuple[NoiseSpec, ...]


def format_duration(seconds: float) -> str:
    """Compact human duration: 90 -> '1min30s', 86400 -> '1d'."""
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    out, rest = [], int(seconds)
    for unit, size in (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


def to_us(seconds: float) -> int:
    return round(seconds * 1e6)


# ------------------------------------------------------------------- levels


def parse_load(ctx: Ctx, value: Any, base: Load) -> Load:
    data = ctx.mapping(value, "a mapping of voltage, current or power, pf, leading")
    ctx.keys(data, LOAD_KEYS)
    if "current" in data and "power" in data:
        ctx.fail("both current and power given; expected one of them")
    voltage = base.voltage_v
    if "voltage" in data:
        voltage = ctx.at("voltage", data).number(data["voltage"], 0, ABSOLUTE_MAX_VOLTAGE_V, "V")
    current, power = base.current_a, base.power_w
    if "current" in data:
        current, power = (
            ctx.at("current", data).number(data["current"], 0, ABSOLUTE_MAX_CURRENT_A, "A"),
            None,
        )
    if "power" in data:
        power = ctx.at("power", data).number(data["power"], -MAX_POWER_W, MAX_POWER_W, "W")
        current = 0.0
    pf = base.pf
    if "pf" in data:
        pf = ctx.at("pf", data).number(data["pf"], 0.0, 1.0)
    leading = (
        ctx.at("leading", data).boolean(data["leading"]) if "leading" in data else base.leading
    )
    load = Load(voltage_v=voltage, current_a=current, power_w=power, pf=pf, leading=leading)
    if power is not None and power != 0:
        if pf < POWER_MIN_PF:
            ctx.fail(f"pf {pf:g} with a power; expected pf >= {POWER_MIN_PF} to derive a current")
        if voltage < POWER_MIN_VOLTAGE_V:
            # 0 V included: the derived current would be 0 and the load silently
            # register nothing. A dead line is an outage event or `current: 0`.
            where, what = (ctx.at("voltage", data), "") if "voltage" in data else (ctx, "voltage ")
            where.fail(
                f"{what}{voltage:g} V with a power; expected >= {POWER_MIN_VOLTAGE_V:g} V "
                "(or give current instead of power; an outage event for 0 V)"
            )
    return load


def parse_level(ctx: Ctx, data: LineDict, base: Level) -> Level:
    """The L1/L2/frequency/temperature keys of ``data`` over ``base``."""
    l1 = parse_load(ctx.at("L1", data), data["L1"], base.l1) if "L1" in data else base.l1
    l2 = parse_load(ctx.at("L2", data), data["L2"], base.l2) if "L2" in data else base.l2
    freq = base.frequency_hz
    if "frequency" in data:
        freq = ctx.at("frequency", data).number(data["frequency"], 0.0, 100.0, "Hz")
    temp = base.temperature_c
    if "temperature" in data:
        temp = ctx.at("temperature", data).number(data["temperature"], -60.0, 150.0, "°C")
    return Level(l1=l1, l2=l2, frequency_hz=freq, temperature_c=temp)


def check_current(ctx: Ctx, node: Node) -> Node:
    bound = node.max_current_a()
    if bound > ABSOLUTE_MAX_CURRENT_A:
        ctx.fail(
            f"current up to {bound:.6g} A is above what any model accepts; "
            f"expected at most {ABSOLUTE_MAX_CURRENT_A:g} A"
        )
    return node


# ----------------------------------------------------------------- segments

_COMMON = ("kind", *LEVEL_KEYS)


def _duration(ctx: Ctx, data: LineDict, key: str = "duration") -> int:
    return to_us(ctx.at(key, data).duration_s(data[key]))


def _constant(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*_COMMON, "duration"), ("duration",))
    return Constant(_duration(ctx, data), parse_level(ctx, data, base))


def _steps(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*_COMMON, "step", "steps"), ("steps",))
    level = parse_level(ctx, data, base)
    step_us = _duration(ctx, data, "step") if "step" in data else None
    sctx = ctx.at("steps", data)
    steps = sctx.sequence(data["steps"], "a list of steps")
    if not steps:
        sctx.fail("empty list; expected at least one step")
    children: list[Node] = []
    for k, raw in enumerate(steps):
        c = sctx.at(k, steps)
        item = c.mapping(raw, "a step mapping with duration, L1, L2, frequency, temperature")
        c.keys(item, ("duration", *LEVEL_KEYS), () if step_us else ("duration",))
        dur = _duration(c, item) if "duration" in item else step_us
        assert dur is not None
        children.append(Constant(dur, parse_level(c, item, level)))
    return Sequence(tuple(children))


def _ramp(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*_COMMON, "duration", "from", "to"), ("duration", "from", "to"))
    start, end = _two_levels(ctx, data, parse_level(ctx, data, base), ("from", "to"))
    return Blend(_duration(ctx, data), start, end, "ramp")


def _two_levels(
    ctx: Ctx, data: LineDict, level: Level, keys: tuple[str, str]
) -> tuple[Level, Level]:
    """The two end levels of a ramp or a periodic segment, over the segment's level."""
    ends = []
    for key in keys:
        c = ctx.at(key, data)
        end = c.mapping(data[key], "a mapping of L1, L2, frequency, temperature")
        c.keys(end, LEVEL_KEYS)
        ends.append(parse_level(c, end, level))
    _same_amounts(ctx, ends[0], ends[1], *keys)
    return ends[0], ends[1]


def _periodic(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    keys = (*_COMMON, "duration", "period", "waveform", "duty", "low", "high")
    ctx.keys(data, keys, ("duration", "period", "waveform", "low", "high"))
    level = parse_level(ctx, data, base)
    shape = ctx.at("waveform", data).choice(data["waveform"], ("sine", "square"))
    duty = 0.5
    if "duty" in data:
        if shape != "square":
            ctx.at("duty", data).fail("applies to waveform square only")
        duty = ctx.at("duty", data).number(data["duty"], 0.0, 1.0)
    low, high = _two_levels(ctx, data, level, ("low", "high"))
    period = _duration(ctx, data, "period")
    return Blend(_duration(ctx, data), low, high, shape, period, duty)  # type: ignore[arg-type]


def _same_amounts(ctx: Ctx, a: Level, b: Level, ka: str, kb: str) -> None:
    for line, la, lb in (("L1", a.l1, b.l1), ("L2", a.l2, b.l2)):
        if (la.power_w is None) != (lb.power_w is None):
            ctx.fail(f"{line}: {ka} and {kb} mix power and current; expected the same quantity")
        for load in (la, lb):
            if load.power_w is not None and 0 < load.voltage_v < POWER_MIN_VOLTAGE_V:
                ctx.fail(f"{line}: a power needs a voltage >= {POWER_MIN_VOLTAGE_V:g} V")
        if la.power_w is not None and 0 in (la.voltage_v, lb.voltage_v) and la != lb:
            ctx.fail(
                f"{line}: a varying power needs a voltage >= {POWER_MIN_VOLTAGE_V:g} V at both "
                "ends; expected current instead of power"
            )


def _children(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> tuple[Node, ...]:
    c = ctx.at("segments", data)
    items = c.sequence(data["segments"], "a list of segments")
    if not items:
        c.fail("empty list; expected at least one segment")
    return tuple(parse_segment(c.at(k, items), raw, base, read) for k, raw in enumerate(items))


def _sequence(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*_COMMON, "segments"), ("segments",))
    return Sequence(_children(ctx, data, parse_level(ctx, data, base), read))


def _repeat(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*_COMMON, "count", "segments"), ("count", "segments"))
    count = ctx.at("count", data).integer(data["count"], 1, 1_000_000)
    children = _children(ctx, data, parse_level(ctx, data, base), read)
    child = children[0] if len(children) == 1 else Sequence(children)
    return Repeat(child, count)


def _sum(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*_COMMON, "duration", "segments"), ("segments",))
    parts = _children(ctx, data, parse_level(ctx, data, base), read)
    longest = max(p.duration_us for p in parts)
    return Sum(parts, _duration(ctx, data) if "duration" in data else longest)


SEGMENT_KINDS: dict[str, Callable[[Ctx, LineDict, Level, Reader], Node]] = {
    "constant": _constant,
    "steps": _steps,
    "ramp": _ramp,
    "periodic": _periodic,
    "sequence": _sequence,
    "repeat": _repeat,
    "sum": _sum,
}
#: Kinds whose parsers live in their own modules (imported on first use).
LAZY_KINDS = {
    "daily": "twin.loadprofile.series:parse_daily",
    "csv": "twin.loadprofile.csvfile:parse_csv",
}


def parse_segment(ctx: Ctx, value: Any, base: Level, read: Reader) -> Node:
    data = ctx.mapping(value, "a segment mapping with a kind")
    if "kind" not in data:
        ctx.fail(f"missing required key 'kind'; expected one of {', '.join(SEGMENT_KINDS)}")
    kind = ctx.at("kind", data).choice(data["kind"], (*SEGMENT_KINDS, *LAZY_KINDS))
    if kind in LAZY_KINDS:
        module, func = LAZY_KINDS[kind].split(":")
        parser = getattr(importlib.import_module(module), func)
    else:
        parser = SEGMENT_KINDS[kind]
    node: Node = parser(ctx, data, base, read)
    return check_current(ctx, node)


# ------------------------------------------------------------------- events

_LINES = {"L1": (0,), "L2": (1,), "both": (0, 1)}


def parse_event(ctx: Ctx, value: Any, duration_us: int, max_current_a: float) -> ProfileEvent:
    data = ctx.mapping(value, "an event mapping with at and kind")
    ctx.keys(data, ("at", "kind", "duration", "line", "voltage", "current", "factor", "hz",
                    "celsius"), ("at", "kind"))  # fmt: skip
    kind = ctx.at("kind", data).choice(data["kind"], EVENT_KINDS)
    needs_duration, takes_line, value_key = INPUT_KINDS.get(kind, (False, False, None))
    allowed = {"at", "kind"} | (
        {"duration"} if kind not in ("demand_reset", "clear_pulse_counts") else set()
    )
    if takes_line:
        allowed.add("line")
    if value_key:
        allowed.add(value_key)
    if kind == "surge":
        allowed.add("factor")
    ctx.keys(data, sorted(allowed), ["duration"] if needs_duration else [])
    at_us = to_us(ctx.at("at", data).duration_s(data["at"], allow_zero=True))
    dur_us = _duration(ctx, data) if "duration" in data else 0
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
    if takes_line:
        if "line" not in data:
            ctx.fail("missing required key 'line'; expected L1, L2 or both")
        lines = _LINES[ctx.at("line", data).choice(data["line"], _LINES)]
    val: float | None = None
    factor: float | None = None
    if kind in ("sag", "swell"):
        if "voltage" not in data:
            ctx.fail(f"missing required key 'voltage'; expected the {kind} voltage in V")
        val = ctx.at("voltage", data).number(data["voltage"], 0, ABSOLUTE_MAX_VOLTAGE_V, "V")
    elif kind == "surge":
        if ("current" in data) == ("factor" in data):
            ctx.fail("expected exactly one of current (A) or factor (multiple of the load)")
        if "current" in data:
            val = ctx.at("current", data).number(data["current"], 0, ABSOLUTE_MAX_CURRENT_A, "A")
        else:
            fctx = ctx.at("factor", data)
            factor = fctx.number(data["factor"], 0, 1000)
            if factor * max_current_a > ABSOLUTE_MAX_CURRENT_A:
                fctx.fail(
                    f"x{factor:g} takes the current to {factor * max_current_a:.6g} A; expected "
                    f"at most {ABSOLUTE_MAX_CURRENT_A:g} A"
                )
    elif kind == "frequency":
        if "hz" not in data:
            ctx.fail("missing required key 'hz'; expected the frequency in Hz")
        val = ctx.at("hz", data).number(data["hz"], 0, 100, "Hz")
    elif kind == "temperature":
        if "celsius" not in data:
            ctx.fail("missing required key 'celsius'; expected the temperature in °C")
        val = ctx.at("celsius", data).number(data["celsius"], -60, 150, "°C")
    return ProfileEvent(kind, at_us, dur_us, lines, val, factor)


def check_overlaps(ctx: Ctx, data: Any, events: list[ProfileEvent], duration_us: int) -> None:
    """Same-kind events on a common line must not overlap (or two outages, two resets)."""

    def span(ev: ProfileEvent) -> tuple[int, int]:
        if ev.duration_us:
            return ev.at_us, ev.end_us
        # An error without a duration stays until the profile ends; commands are instants.
        return ev.at_us, duration_us if ev.kind.endswith("_error") else ev.at_us + 1

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
