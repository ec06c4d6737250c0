"""`minimeter profiles list|show|check`: browse and validate load profiles.

``list`` prints the shipped profiles (name, duration, description); ``show`` prints
one profile's duration, expected energy per element and total (sum_then_clamp,
ideal meter), peak power and events; ``check`` validates files and exits 1 when
any is invalid, printing one line per bad file (file:line: key path: problem).
"""

from __future__ import annotations

import argparse
import math
import sys

from twin.errors import ProfileError
from twin.loadprofile.reader import parse_duration_s
from twin.loadprofile.sampler import load_profile, shipped_profiles
from twin.loadprofile.schema import format_duration


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="list the shipped profiles")
    show = sub.add_parser("show", help="duration, expected energy, peak power and events")
    show.add_argument("profile", metavar="NAME|PATH")
    show.add_argument(
        "--step",
        default=None,
        metavar="DURATION",
        help="integration step, e.g. 1, 10s, 2min, like simulate's (default 1 s, 60 s for "
        "profiles over 7 days)",
    )
    check = sub.add_parser("check", help="validate profile files (exit 1 if any is invalid)")
    check.add_argument("paths", nargs="+", metavar="PATH")


def main(args: argparse.Namespace) -> int:
    if args.action == "list":
        return _list()
    if args.action == "show":
        return _show(args.profile, None if args.step is None else _step_s(args.step))
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


def _show(ref: str, step_s: float | None) -> int:
    profile = load_profile(ref)
    if step_s is None:
        step_s = 1.0 if profile.duration_s <= 7 * 86_400 else 60.0
    if not 1e-3 <= step_s <= 3600:
        raise ProfileError(f"--step: {step_s:g} s out of range; expected 0.001..3600 s")
    stats = profile.sampler().stats(step_s)
    print(f"name:        {profile.name}")
    print(f"source:      {profile.source}")
    print(f"description: {profile.description}")
    print(f"duration:    {format_duration(profile.duration_s)} ({profile.duration_s:g} s)")
    print(f"energy L1:   {stats.l1_wh / 1000:.6f} kWh (net, negative = export)")
    print(f"energy L2:   {stats.l2_wh / 1000:.6f} kWh")
    print(f"registered:  {stats.total_wh / 1000:.6f} kWh (sum then clamp, step {step_s:g} s)")
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
