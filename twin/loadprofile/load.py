"""The top level of a profile file: schema version, name, defaults, segments, events, noise.

Called once per file by :func:`twin.loadprofile.sampler.load_profile` with the line-aware
mapping from :func:`twin.loadprofile.reader.parse_yaml`; returns a frozen
:class:`~twin.loadprofile.schema.ProfileSpec` whose ``root`` is the compiled segment tree.
Files with a newer ``schema`` are refused (not guessed at), naming the version this
twin reads.
"""

from __future__ import annotations

from typing import Any

from twin.loadprofile.compose import Sequence
from twin.loadprofile.events import ProfileEvent
from twin.loadprofile.reader import Ctx, LineDict
from twin.loadprofile.schema import (
    LEVEL_KEYS,
    NAME_RE,
    NOISE_QUANTITIES,
    SCHEMA_VERSION,
    NoiseSpec,
    ProfileSpec,
    Reader,
    check_overlaps,
    parse_event,
    parse_level,
    parse_segment,
    to_us,
)
from twin.loadprofile.segments import Level

TOP_KEYS = ("schema", "name", "description", "seed", "defaults", "segments", "events", "noise")


def parse_profile(data: LineDict, source: str, read: Reader) -> ProfileSpec:
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
    seed = ctx.at("seed", data).integer(data["seed"], 0, 2**63 - 1) if "seed" in data else 0
    base = Level()
    if "defaults" in data:
        dctx = ctx.at("defaults", data)
        defaults = dctx.mapping(data["defaults"], "a mapping of L1, L2, frequency, temperature")
        dctx.keys(defaults, LEVEL_KEYS)
        base = parse_level(dctx, defaults, base)

    segctx = ctx.at("segments", data)
    items = segctx.sequence(data["segments"], "a list of segments")
    if not items:
        segctx.fail("empty list; expected at least one segment")
    children = tuple(
        parse_segment(segctx.at(k, items), raw, base, read) for k, raw in enumerate(items)
    )
    root = children[0] if len(children) == 1 else Sequence(children)
    max_current = root.max_current_a()

    events: list[ProfileEvent] = []
    if "events" in data:
        ectx = ctx.at("events", data)
        raw_events = ectx.sequence(data["events"], "a list of events")
        for k, raw in enumerate(raw_events):
            events.append(parse_event(ectx.at(k, raw_events), raw, root.duration_us, max_current))
        check_overlaps(ectx, raw_events, events, root.duration_us)

    noise: list[NoiseSpec] = []
    if "noise" in data:
        nctx = ctx.at("noise", data)
        raw_noise = nctx.sequence(data["noise"], "a list of noise entries")
        noise = [_noise(nctx.at(k, raw_noise), raw) for k, raw in enumerate(raw_noise)]
    return ProfileSpec(name, description, seed, root, tuple(events), tuple(noise))


_NOISE_LINES = {"L1": (0,), "L2": (1,)}


def _noise(ctx: Ctx, value: Any) -> NoiseSpec:
    data = ctx.mapping(value, "a noise mapping with quantity and amplitude")
    ctx.keys(data, ("quantity", "amplitude", "period"), ("quantity", "amplitude"))
    qctx = ctx.at("quantity", data)
    raw = data["quantity"]
    options = [f"{line}.{q}" for line in ("L1", "L2") for q in NOISE_QUANTITIES[:4]]
    options += list(NOISE_QUANTITIES)
    quantity = qctx.choice(raw, options)
    lines: tuple[int, ...] = (0, 1)
    if "." in quantity:
        prefix, quantity = quantity.split(".")
        lines = _NOISE_LINES[prefix]
    hi = {"voltage": 600.0, "current": 22_000.0, "power": 1.0, "pf": 1.0}
    hi |= {"frequency": 50.0, "temperature": 100.0}
    actx = ctx.at("amplitude", data)
    amplitude, relative = actx.percent_or_number(data["amplitude"], hi[quantity])
    if quantity == "power" and not relative:
        actx.fail("absolute power noise invalid; expected a percentage such as 5%")
    period = to_us(ctx.at("period", data).duration_s(data["period"])) if "period" in data else 10**6
    return NoiseSpec(quantity, lines, amplitude, relative, period)
