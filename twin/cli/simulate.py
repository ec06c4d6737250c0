"""`minimeter simulate PROFILE`: run a profile through the meter, print or write the results.

Options are parsed here once into a :class:`~twin.batch.simulate.SimSettings`; bad input
(unknown profile or model, bad duration) raises a ConfigError that the CLI prints
as one line. The summary goes to stdout (JSON with ``--json``), files to ``--out``;
progress (only on a terminal) and the samples-per-second figure go to stderr, so
stdout and the files stay byte-identical between runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, TextIO

from twin.batch.simulate import SimSettings, cyclic_gc_paused, keep_freed_memory
from twin.cli import montecarlo
from twin.cli.meter_options import add_meter_options, choices_from_args
from twin.control import profile_choices, resolve
from twin.core import DEFAULT_MODEL, AccuracyConfig, ErrorCode, MeterConfig, MeterModel
from twin.errors import ConfigError
from twin.loadprofile import Profile
from twin.units import SEED_MAX, SEED_MIN, SEED_RANGE_TEXT, parse_duration_s


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("profile", metavar="PROFILE", help="shipped profile name or YAML path")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="meter model (default: %(default)s)")
    parser.add_argument(
        "--duration", help="simulated time, e.g. 90, 15min, 1h, 7d (default: the profile's)"
    )
    parser.add_argument(
        "--step",
        default="1",
        help="sample period, e.g. 1, 10s, 1h; a step that does not divide the duration "
        "ends with one shorter step (default: 1 s)",
    )
    parser.add_argument(
        "--interval", default="1min", help="time-series row interval (default: 1min)"
    )
    parser.add_argument(
        "--seed", type=int, help="seed of the profile's noise (default: the profile's seed)"
    )
    parser.add_argument(
        "--accuracy-seed",
        type=int,
        help="draw a per-meter error curve within the accuracy class (default: none, ideal)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="write timeseries, events, summary and plots here (default: none, print only)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as JSON (default: text)"
    )
    parser.add_argument(
        "--plot",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="write PNG plots into --out (default: on)",
    )
    parser.add_argument(
        "--edges", action="store_true", help="also log every pulse edge (default: off)"
    )
    add_meter_options(parser, fleet=False)
    montecarlo.add_arguments(parser)


def _duration(option: str, text: str) -> float:
    value = parse_duration_s(text)
    if value is None or value <= 0:
        raise ConfigError(f"{option}: {text!r} invalid; expected a duration like 90, 15min, 1h, 7d")
    return value


def settings_from_args(args: argparse.Namespace, profile: Profile) -> SimSettings:
    """The run's settings; the meter's are the options over the profile's own keys."""
    try:
        model = MeterModel.parse(args.model)
    except ValueError as exc:
        raise ConfigError(f"--{exc}") from None
    seed = args.accuracy_seed
    if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
        raise ConfigError(f"--accuracy-seed: {seed} out of range; expected {SEED_RANGE_TEXT}")
    base = MeterConfig(model=model, accuracy=AccuracyConfig(seed=seed))
    layers = [choices_from_args(args), profile_choices(profile)]
    return SimSettings(
        meter=resolve(base, [layer for layer in layers if layer is not None]),
        model=model,
        duration_s=None if args.duration is None else _duration("--duration", args.duration),
        step_s=_duration("--step", args.step),
        seed=args.seed,
        interval_s=_duration("--interval", args.interval),
        edges=args.edges,
        accuracy_seed=args.accuracy_seed,
    )


class Progress:
    """A one-line progress bar on a terminal; silent when stderr is piped."""

    def __init__(self, stream: TextIO | None = None, width: int = 30) -> None:
        # Looked up per call, not bound at import: tests and callers may swap sys.stderr.
        self.stream, self.width = stream or sys.stderr, width
        self.enabled = self.stream.isatty()
        self.t0 = time.perf_counter()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if not self.enabled or (now - self._last < 0.1 and done < total):
            return
        self._last = now
        frac = done / total if total else 1.0
        bar = "#" * round(frac * self.width)
        rate = done / max(now - self.t0, 1e-9)
        self.stream.write(f"\r[{bar:<{self.width}}] {frac:6.1%} {rate / 1e6:6.2f} M samples/s")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled:
            self.stream.write("\n")


def error_names(codes: list[int]) -> list[str]:
    """Error codes with their names, e.g. ``2 (calibration)``."""
    return [f"{code} ({ErrorCode(code).name.lower()})" for code in codes]


def _print_summary(summary: dict[str, Any]) -> None:
    pulses = summary["pulses"]
    lines = [
        f"profile            {summary['profile']} ({summary['model']})",
        f"duration           {summary['duration_s']:g} s, {summary['samples']} samples",
        f"energy delivered   {summary['energy_delivered_wh']} Wh "
        f"(L1 {summary['energy_l1_wh']} Wh, L2 {summary['energy_l2_wh']} Wh)",
        f"energy received    {summary['energy_received_wh']} Wh",
        f"pulses 10/100/1000 {pulses['10']} / {pulses['100']} / {pulses['1000']}, "
        f"counter {summary['counter_counts']}",
        f"max demand         {summary['demand_max_kw']:.3f} kW "
        f"(peak {summary['demand_peak_kw']:.3f} kW at {summary['demand_peak_at_s']:.0f} s)",
        f"errors seen        {', '.join(error_names(summary['errors_seen'])) or 'none'}",
        f"unpowered          {summary['unpowered_s']:g} s",
    ]
    print("\n".join(lines))


def main(args: argparse.Namespace) -> int:
    from twin.loadprofile import load_profile

    profile = load_profile(args.profile)
    settings = settings_from_args(args, profile)
    keep_freed_memory()  # process-wide, so set here, not by the library's simulate()
    if montecarlo.wanted(args):
        return montecarlo.main(args, settings)
    with cyclic_gc_paused():
        return _run(args, profile, settings)


def _run(args: argparse.Namespace, profile: Profile, settings: SimSettings) -> int:
    from twin.batch.eventswriter import EventsWriter
    from twin.batch.report import PlotProcess, prepare_out_dir, summary_json, write_all
    from twin.batch.simulate import simulate
    from twin.forking import can_fork

    plotter, events = None, None
    try:
        if args.out is not None:
            prepare_out_dir(args.out)  # fail before a long run, not after it
            # Forked first, while small (before the plot process: it holds no copy of
            # that pipe's end); fed the events during the run, it writes events.jsonl.
            if can_fork():
                events = EventsWriter.start(settings.duration_s or profile.duration_s)
            if args.plot:  # forked now: it imports matplotlib beside the run
                plotter = PlotProcess.start()
        progress = Progress()
        t0 = time.perf_counter()
        result = simulate(
            profile, settings, progress=progress, each_block=events, samples_ahead=can_fork()
        )
    except BaseException:
        if events is not None:
            events.stop()
        if plotter is not None:
            plotter.finish()  # nothing sent: it exits without drawing
        raise
    sim_s = time.perf_counter() - t0
    progress.finish()
    for warning in result.summary["warnings"]:  # once each, before the figures
        print(f"minimeter simulate: warning: {warning}", file=sys.stderr)
    if args.out is not None:
        write_all(args.out, result, plots=args.plot, plotter=plotter, events=events)
    total_s = time.perf_counter() - t0
    samples = result.summary["samples"]
    print(
        f"simulated {samples} samples in {sim_s:.2f} s ({samples / max(sim_s, 1e-9) / 1e6:.2f} "
        f"M samples/s); {total_s:.2f} s with output",
        file=sys.stderr,
    )
    if args.json:
        sys.stdout.write(summary_json(result.summary))
    else:
        _print_summary(result.summary)
    return 0
