"""`minimeter simulate PROFILE --seeds A..B | --meters N | --fleet FILE`: many meters at once.

The population is built here (fleet files belong to the runtime, above the batch
package) and run by :mod:`twin.batch.montecarlo` across ``--jobs`` worker
processes. ``--seeds A..B``: one meter per accuracy seed on one load (the meter
the other options and the profile choose; the profile's noise seeded by
``--seed``); ``--meters N``: N such meters, accuracy seeds counted up from
``--accuracy-seed`` (default 1) and, with ``--seed``, load seeds counted up from it;
``--fleet FILE``: the file's meters, each on its own profile and model, accuracy
seeds counted up from ``--accuracy-seed`` (default 1), load seed as the file gives
it. The table goes to ``--out DIR/summary.csv`` (with
``population.json``) or, without ``--out``, to stdout; the population's spread is
printed (JSON with ``--json``), timings go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

from twin.batch.montecarlo import (
    MAX_RUNS,
    MeterRun,
    parse_seed_range,
    population,
    run_all,
    seed_runs,
    table_csv,
)
from twin.batch.report import prepare_out_dir
from twin.batch.simulate import SimSettings
from twin.core import MeterConfig
from twin.errors import ConfigError
from twin.units import SEED_MAX


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("many meters (Monte Carlo; one summary table)")
    how = group.add_mutually_exclusive_group()
    how.add_argument(
        "--seeds", metavar="A..B", help="one meter per accuracy seed A..B, one load (default: off)"
    )
    how.add_argument(
        "--meters", type=int, metavar="N", help="N meters, seeds counted up (default: off)"
    )
    how.add_argument("--fleet", metavar="FILE", help="the meters of a fleet file (default: off)")
    group.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="worker processes (default: the cores, %(default)s here)",
    )


def wanted(args: argparse.Namespace) -> bool:
    return args.seeds is not None or args.meters is not None or args.fleet is not None


def build_runs(args: argparse.Namespace, settings: SimSettings) -> list[MeterRun]:
    meter = settings.meter if settings.meter is not None else MeterConfig(model=settings.model)
    if args.seeds is not None:
        return seed_runs(args.profile, meter, parse_seed_range(args.seeds), settings.seed)
    base = 1 if settings.accuracy_seed is None else settings.accuracy_seed
    if args.meters is not None:
        if not 1 <= args.meters <= MAX_RUNS:
            raise ConfigError(f"--meters {args.meters}: out of range; expected 1..{MAX_RUNS:,}")
        last = max(base, settings.seed or 0) + args.meters - 1
        if last > SEED_MAX:
            raise ConfigError(
                f"--meters {args.meters}: seeds would pass {SEED_MAX}; expected "
                f"--seed and --accuracy-seed <= {SEED_MAX - args.meters + 1}"
            )
        return [
            MeterRun(
                label=f"MM{i + 1:08d}",
                profile=args.profile,
                config=replace(
                    meter,
                    serial_number=f"MM{i + 1:08d}",
                    accuracy=replace(meter.accuracy, seed=base + i),
                ),
                load_seed=None if settings.seed is None else settings.seed + i,
            )
            for i in range(args.meters)
        ]
    # Imported here: the runtime (servers included) is needed for --fleet only.
    from twin.runtime.fleet import load_fleet, meter_configs

    fleet = load_fleet(args.fleet)
    configs = meter_configs(fleet, base)
    return [
        MeterRun(label=spec.serial, profile=spec.profile, config=config, load_seed=spec.seed)
        for spec, config in zip(fleet.meters, configs, strict=True)
    ]


def main(args: argparse.Namespace, settings: SimSettings) -> int:
    runs = build_runs(args, settings)
    if args.out is not None:
        prepare_out_dir(args.out)
    t0 = time.perf_counter()
    rows = run_all(runs, duration_s=settings.duration_s, step_s=settings.step_s, jobs=args.jobs)
    wall_s = time.perf_counter() - t0
    spread = population(rows)
    print(
        f"simulated {len(runs)} meters (+ references) in {wall_s:.2f} s on {args.jobs} worker(s)",
        file=sys.stderr,
    )
    table = table_csv(rows)
    if args.out is not None:
        (args.out / "summary.csv").write_text(table, encoding="utf-8")
        (args.out / "population.json").write_text(json.dumps(spread, indent=2) + "\n")
    else:
        sys.stdout.write(table)
    if args.json:
        text = json.dumps(spread, indent=2) + "\n"
    else:
        text = (
            f"meters {spread['meters']}: registration error mean "
            f"{spread['error_pct_mean']:+.4f} %, std {spread['error_pct_std']:.4f} %, "
            f"range {spread['error_pct_min']:+.4f} .. {spread['error_pct_max']:+.4f} %\n"
        )
    (sys.stdout if args.out is not None else sys.stderr).write(text)
    return 0
