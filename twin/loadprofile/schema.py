"""Profile schema 1: validation of the YAML mapping into frozen, compiled objects.

Top level: ``schema: 1`` (newer versions are refused), ``name``, optional
``description``, ``seed`` (noise), ``defaults`` (L1/L2/frequency/temperature every
segment starts from), ``segments`` (played in sequence), ``events`` and ``noise``;
the wiring (``service``, ``wiring``: :mod:`~twin.loadprofile.wiring`) and the meter
settings a profile may choose (``registration_mode``, ``demand_*``:
:mod:`~twin.loadprofile.settings`).
Each segment is a tagged union on ``kind``: :class:`SegmentKind` is the one table of
kinds and :data:`SEGMENT_PARSERS` maps each to its parser. Composite kinds
(sequence, repeat, sum) nest segments and pass their own L1/L2/frequency/temperature
down as defaults; the time-series kinds parse in :mod:`~twin.loadprofile.series`
(daily) and :mod:`~twin.loadprofile.csvfile` (csv), events in
:mod:`~twin.loadprofile.events`, noise in :mod:`~twin.loadprofile.noise`. See
docs/profiles.md for the full schema with one example per kind.

Called once per file by :func:`twin.loadprofile.load_profile` with the line-aware
mapping from :func:`twin.loadprofile.reader.parse_yaml`; every check names the file,
line and key path, and says what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from twin.core import ABSOLUTE_MAX_CURRENT_A
from twin.loadprofile.compose import Repeat, Sequence, Sum
from twin.loadprofile.csvfile import parse_csv
from twin.loadprofile.events import ProfileEvent, check_overlaps, parse_event
from twin.loadprofile.levels import (
    LEVEL_KEYS,
    POWER_MIN_VOLTAGE_V,
    SEGMENT_KEYS,
    Reader,
    parse_duration_us,
    parse_level,
    parse_level_mapping,
)
from twin.loadprofile.noise import NoiseSpec, parse_noise
from twin.loadprofile.reader import Ctx, LineDict
from twin.loadprofile.segments import Blend, Constant, Level, Node, Shape
from twin.loadprofile.series import parse_daily
from twin.loadprofile.settings import SETTING_KEYS, MeterSettings, parse_settings
from twin.loadprofile.wiring import Wiring, parse_wiring
from twin.units import SEED_MAX, SEED_MIN

SCHEMA_VERSION: Final = 1
TOP_KEYS: Final = ("schema", "name", "description", "seed", "defaults", "segments", "events",
                   "noise", "service", "wiring", *SETTING_KEYS)  # fmt: skip
NAME_RE: Final = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: The shapes ``kind: periodic`` accepts as its ``waveform``.
WAVEFORMS: Final = (Shape.SINE, Shape.SQUARE)


class SegmentKind(StrEnum):
    CONSTANT = "constant"
    STEPS = "steps"
    RAMP = "ramp"
    PERIODIC = "periodic"
    SEQUENCE = "sequence"
    REPEAT = "repeat"
    SUM = "sum"
    DAILY = "daily"
    CSV = "csv"


@dataclass(frozen=True, slots=True)
class ProfileSpec:
    """A validated profile: the compiled segment tree and what plays over it."""

    name: str
    description: str
    seed: int
    root: Node
    events: tuple[ProfileEvent, ...]
    noise: tuple[NoiseSpec, ...]
    wiring: Wiring
    settings: MeterSettings


def parse_profile(data: LineDict, source: str, read: Reader) -> ProfileSpec:
    """The top-level mapping of a profile file, labelled ``source`` in messages."""
    ctx = Ctx(source, "", data.line)
    if "schema" not in data:
        ctx.fail("missing required key 'schema'; expected 'schema: 1' as the first line")
    sctx = ctx.at("schema", data)
    version = data["schema"]
    if isinstance(version, bool) or not isinstance(version, int):
        sctx.fail(f"{version!r} invalid; expected the whole number {SCHEMA_VERSION}")
    if version > SCHEMA_VERSION:
        sctx.fail(
            f"version {version} is newer than this twin reads; expected {SCHEMA_VERSION} "
            "(upgrade minimeter-twin)"
        )
    if version < 1:
        sctx.fail(f"version {version} invalid; expected {SCHEMA_VERSION}")
    ctx.keys(data, TOP_KEYS, ("name", "segments"))
    nctx = ctx.at("name", data)
    name = nctx.text(data["name"], "a profile name")
    if not NAME_RE.match(name):
        nctx.fail(f"{name!r} invalid; expected lowercase letters, digits, '.', '_' or '-'")
    description = ""
    if "description" in data:
        description = " ".join(ctx.at("description", data).text(data["description"]).split())
    seed = SEED_MIN
    if "seed" in data:
        seed = ctx.at("seed", data).integer(data["seed"], SEED_MIN, SEED_MAX)
    base = Level()
    if "defaults" in data:
        base = parse_level_mapping(ctx.at("defaults", data), data["defaults"], base)
    wiring = parse_wiring(ctx, data)
    settings = parse_settings(ctx, data)
    children = _children(ctx, data, base, read)
    root = children[0] if len(children) == 1 else Sequence(children)

    events: list[ProfileEvent] = []
    if "events" in data:
        ectx = ctx.at("events", data)
        raw_events = ectx.sequence(data["events"], "a list of events")
        max_current = max(root.max_current_a())
        for k, raw in enumerate(raw_events):
            events.append(parse_event(ectx.at(k, raw_events), raw, root.duration_us, max_current))
        check_overlaps(ectx, raw_events, events, root.duration_us)

    noise: list[NoiseSpec] = []
    if "noise" in data:
        nctx = ctx.at("noise", data)
        raw_noise = nctx.sequence(data["noise"], "a list of noise entries")
        noise = [parse_noise(nctx.at(k, raw_noise), raw) for k, raw in enumerate(raw_noise)]
    return ProfileSpec(name, description, seed, root, tuple(events), tuple(noise), wiring, settings)


def check_current(ctx: Ctx, node: Node) -> Node:
    bound = max(node.max_current_a())
    if bound > ABSOLUTE_MAX_CURRENT_A:
        ctx.fail(
            f"current up to {bound:.6g} A is above what any model accepts; "
            f"expected at most {ABSOLUTE_MAX_CURRENT_A:g} A"
        )
    return node


# ----------------------------------------------------------------- segments


def _constant(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*SEGMENT_KEYS, "duration"), ("duration",))
    return Constant(parse_duration_us(ctx, data), parse_level(ctx, data, base))


def _steps(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*SEGMENT_KEYS, "step", "steps"), ("steps",))
    level = parse_level(ctx, data, base)
    step_us = parse_duration_us(ctx, data, "step") if "step" in data else None
    sctx = ctx.at("steps", data)
    steps = sctx.sequence(data["steps"], "a list of steps")
    if not steps:
        sctx.fail("empty list; expected at least one step")
    children: list[Node] = []
    for k, raw in enumerate(steps):
        c = sctx.at(k, steps)
        item = c.mapping(raw, "a step mapping with duration, L1, L2, frequency, temperature")
        c.keys(item, ("duration", *LEVEL_KEYS), () if step_us else ("duration",))
        dur = parse_duration_us(c, item) if "duration" in item else step_us
        assert dur is not None  # required above when there is no step
        children.append(Constant(dur, parse_level(c, item, level)))
    return Sequence(tuple(children))


def _ramp(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*SEGMENT_KEYS, "duration", "from", "to"), ("duration", "from", "to"))
    start, end = _two_levels(ctx, data, parse_level(ctx, data, base), ("from", "to"))
    return Blend(parse_duration_us(ctx, data), start, end, Shape.RAMP)


def _two_levels(
    ctx: Ctx, data: LineDict, level: Level, keys: tuple[str, str]
) -> tuple[Level, Level]:
    """The two end levels of a ramp or a periodic segment, over the segment's level."""
    ends = [parse_level_mapping(ctx.at(key, data), data[key], level) for key in keys]
    _same_amounts(ctx, ends[0], ends[1], *keys)
    return ends[0], ends[1]


def _periodic(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    keys = (*SEGMENT_KEYS, "duration", "period", "waveform", "duty", "low", "high")
    ctx.keys(data, keys, ("duration", "period", "waveform", "low", "high"))
    level = parse_level(ctx, data, base)
    shape = ctx.at("waveform", data).member(data["waveform"], Shape, WAVEFORMS)
    duty = 0.5
    if "duty" in data:
        if shape is not Shape.SQUARE:
            ctx.at("duty", data).fail("applies to waveform square only")
        duty = ctx.at("duty", data).number(data["duty"], 0.0, 1.0)
    low, high = _two_levels(ctx, data, level, ("low", "high"))
    period = parse_duration_us(ctx, data, "period")
    return Blend(parse_duration_us(ctx, data), low, high, shape, period, duty)


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
    ctx.keys(data, (*SEGMENT_KEYS, "segments"), ("segments",))
    return Sequence(_children(ctx, data, parse_level(ctx, data, base), read))


def _repeat(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*SEGMENT_KEYS, "count", "segments"), ("count", "segments"))
    count = ctx.at("count", data).integer(data["count"], 1, 1_000_000)
    children = _children(ctx, data, parse_level(ctx, data, base), read)
    child = children[0] if len(children) == 1 else Sequence(children)
    return Repeat(child, count)


def _sum(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> Node:
    ctx.keys(data, (*SEGMENT_KEYS, "duration", "segments"), ("segments",))
    parts = _children(ctx, data, parse_level(ctx, data, base), read)
    longest = max(p.duration_us for p in parts)
    return Sum(parts, parse_duration_us(ctx, data) if "duration" in data else longest)


SegmentParser = Callable[[Ctx, LineDict, Level, Reader], Node]
SEGMENT_PARSERS: Final[dict[SegmentKind, SegmentParser]] = {
    SegmentKind.CONSTANT: _constant,
    SegmentKind.STEPS: _steps,
    SegmentKind.RAMP: _ramp,
    SegmentKind.PERIODIC: _periodic,
    SegmentKind.SEQUENCE: _sequence,
    SegmentKind.REPEAT: _repeat,
    SegmentKind.SUM: _sum,
    SegmentKind.DAILY: parse_daily,
    SegmentKind.CSV: parse_csv,
}


def parse_segment(ctx: Ctx, value: Any, base: Level, read: Reader) -> Node:
    data = ctx.mapping(value, "a segment mapping with a kind")
    if "kind" not in data:
        kinds = ", ".join(SegmentKind)
        ctx.fail(f"missing required key 'kind'; expected one of {kinds}")
    kind = ctx.at("kind", data).member(data["kind"], SegmentKind)
    return check_current(ctx, SEGMENT_PARSERS[kind](ctx, data, base, read))
