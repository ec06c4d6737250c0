"""`minimeter profiles list|show|check`: browse and validate load profiles.

``list`` prints the shipped profiles (name, duration, description); ``show`` prints
one profile's duration, wiring and meter settings, the energy per element and total
and the peak power an ideal meter registers over it (MMD-200A unless ``--model``;
run through the real core with :func:`twin.drive.register`, honouring the
profile's service, CT placement and registration/demand choices), and its events;
it warns once on stderr when a single-element model would miss the profile's L2
load. ``check`` validates files and exits 1 when any is invalid, printing one line
per bad file (file:line: key path: problem).
"""

from __future__ import annotations

import argparse
import math
import sys

from twin.core import MeterModel, RegistrationMode
from twin.drive import REGISTER_MODEL, register
from twin.errors import ProfileError
from twin.loadprofile import load_profile, shipped_profiles
from twin.units import format_duration, parse_duration_s

#: Default step of `show`: 1 s, coarser for profiles longer than a week.
SHOW_STEP_S = 1.0
SHOW_LONG_STEP_S = 60.0
SHOW_LONG_AFTER_S = 7 * 86_400
SHOW_STEP_RANGE_S = (1e-3, 3600.0)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the shipped profiles")
    show = sub.add_parser(
        "show",
        help=f"duration, registered energy and peak power (an ideal {REGISTER_MODEL}), events",
        description=f"Runs the profile through an ideal {REGISTER_MODEL} or --model (the real "
        "meter core, with the profile's service, CT placement and registration mode; "
        "sum_then_clamp unless the profile chooses) and prints what it registers: energy per "
        "line (net) and in total, and the peak measured power. Like the meter, it registers "
        "nothing below the starting current or while unpowered.",
    )
    show.add_argument("profile", metavar="NAME|PATH")
    show.add_argument(
        "--step",
        default=None,
        metavar="DURATION",
        help="integration step, e.g. 1, 10s, 2min, like simulate's (default 1 s, 60 s for "
        "profiles over 7 days)",
    )
    show.add_argument(
        "--model",
        default=REGISTER_MODEL,
        metavar="MODEL",
        help=f"meter model, e.g. MMS-200A (default {REGISTER_MODEL}); warns when a "
        "single-element model misses the profile's L2 load",
    )
    check = sub.add_parser("check", help="validate profile files (exit 1 if any is invalid)")
    check.add_argument("paths", nargs="+", metavar="PATH")


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    if args.action == "show":
        step_s = None if args.step is None else _step_s(args.step)
        return _show(args.profile, step_s, _model(args.model))
    return _check(args.paths)


def _list() -> int:
    profiles = shipped_profiles()
    width = max(len(p.name) for p in profiles)
    for p in profiles:
        print(f"{p.name:<{width}}  {format_duration(p.duration_s):>10}  {p.description}")
    return 0


def _step_s(text: str) -> float:
    """--step takes the same durations as the profiles and `simulate --step`."""
    value = parse_duration_s(text)
    if value is None or not math.isfinite(value):
        raise ProfileError(f"--step: {text!r} invalid; expected a duration like 1, 10s, 2min")
    return value


def _model(name: str) -> MeterModel:
    try:
        return MeterModel.parse(name)
    except ValueError as exc:
        raise ProfileError(f"--{exc}") from None


def _show(ref: str, step_s: float | None, model: MeterModel) -> int:
    profile = load_profile(ref)
    warning = profile.model_warning(model)
    if warning:
        print(warning, file=sys.stderr)
    if step_s is None:
        step_s = SHOW_STEP_S if profile.duration_s <= SHOW_LONG_AFTER_S else SHOW_LONG_STEP_S
    lo, hi = SHOW_STEP_RANGE_S
    if not lo <= step_s <= hi:
        raise ProfileError(f"--step: {step_s:g} s out of range; expected {lo:g}..{hi:g} s")
    n = round(profile.duration_s * 1e6) // round(step_s * 1e6)
    settings = profile.meter_settings
    try:
        stats = register(profile.sampler(), 0.0, step_s, n, model=model, settings=settings)
    except ValueError as exc:  # settings the core refuses for this meter
        raise ProfileError(f"{profile.source}: {exc}") from None
    mode = stats.registration_mode.name.lower()
    chosen = ", ".join(f"{k}={v}" for k, v in settings.given().items()) or "defaults"
    print(f"name:        {profile.name}")
    print(f"source:      {profile.source}")
    print(f"description: {profile.description}")
    print(f"duration:    {format_duration(profile.duration_s)} ({profile.duration_s:g} s)")
    print(f"wiring:      {profile.wiring.describe()}")
    print(f"settings:    {chosen}")
    print(f"meter:       {model.name} (ideal)")
    print(f"energy L1:   {stats.l1_wh / 1000:.6f} kWh (net, negative = export)")
    print(f"energy L2:   {stats.l2_wh / 1000:.6f} kWh")
    print(f"registered:  {stats.delivered_wh / 1000:.6f} kWh ({mode}, step {step_s:g} s)")
    if stats.registration_mode is RegistrationMode.BIDIRECTIONAL:
        print(f"received:    {stats.received_wh / 1000:.6f} kWh")
    print(f"peak power:  {stats.peak_w:.1f} W")
    print(f"events:      {len(profile.events)}")
    for ev in profile.events:
        print(f"  {ev.describe()}")
    return 0


def _check(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        try:
            profile = load_profile(path)
        except ProfileError as exc:
            bad += 1
            print(f"error: {exc}", file=sys.stderr)
            continue
        print(f"ok: {path}: {profile.name}, {format_duration(profile.duration_s)}")
    return 1 if bad else 0
