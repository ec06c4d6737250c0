"""Monte-Carlo runs: a population of meters through a load, across worker processes.

Theory of operation. A study is a list of :class:`MeterRun` (one meter each: a
label, a profile reference, its core configuration with its accuracy seed, and the
seed of the profile's noise). A duration the step does not divide ends with one
shorter step, as ``simulate`` runs it. ``minimeter simulate --seeds A..B`` builds one run per
accuracy seed on one profile and one load (:func:`seed_runs`), so the rows differ
only by the meters' error curves; ``--meters N`` and ``--fleet FILE`` build them
from a fleet (the CLI's job: fleets belong to the runtime, above this package).

Each run drives a plain core through ``twin.drive.drive`` (the one stepping loop)
in day-long blocks, without series or edge events: a row holds the registers at
the end (pulse counts are functions of energy, so they need no edges). Runs go in
groups whose meters advance in lockstep, a block each in turn, so meters on the
same load share each sampled block (the sampler is pure). Every
distinct load and model is also run once through an ideal meter (no error curve)
as the reference, and each row carries its registration error against it in
percent. :func:`run_all` farms the runs out to ``jobs`` worker processes
(``jobs == 1`` runs in this process); rows come back in input order, so the table
is byte-identical for any number of workers. Profiles are loaded once per worker.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import multiprocessing
import sys
import threading
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

from twin.batch.simulate import SimSettings, keep_freed_memory, steps
from twin.core import AccuracyConfig, Event, MeterConfig, MeterCore, SampleBlock
from twin.drive import drive
from twin.errors import ConfigError
from twin.loadprofile import Profile, Sampler, load_profile
from twin.units import SEED_MAX, SEED_MIN, SEED_RANGE_TEXT, uj_to_wh

#: Samples per call of the core: a day at 1 s.
BLOCK_SAMPLES = 86_400
#: The most runs one study may hold (a row each, kept in memory).
MAX_RUNS = 100_000
#: Meters advanced in lockstep, sharing each sampled block (their cores in memory at once).
GROUP_RUNS = 64
#: Blocks a shared sampler keeps: a step split at profile commands asks for several.
SHARED_BLOCKS = 8

#: Columns of the summary table, in order.
COLUMNS = (
    "label",
    "profile",
    "model",
    "accuracy_seed",
    "load_seed",
    "energy_delivered_wh",
    "energy_delivered_uj",
    "energy_received_wh",
    "energy_l1_wh",
    "energy_l2_wh",
    "pulses_10wh",
    "pulses_100wh",
    "pulses_1000wh",
    "counter_counts",
    "demand_max_kw",
    "error_code",
    "reference_delivered_uj",
    "error_pct",
)


@dataclass(frozen=True, slots=True)
class MeterRun:
    """One meter of a study."""

    label: str
    profile: str  # shipped name or path, loaded in the worker
    config: MeterConfig
    load_seed: int | None = None  # the profile noise's seed (None: the profile's own)


def parse_seed_range(text: str) -> range:
    """``A..B`` (inclusive) or a single seed, within the seed range."""
    lo_text, sep, hi_text = text.partition("..")
    try:
        lo = int(lo_text)
        hi = int(hi_text) if sep else lo
    except ValueError:
        raise ConfigError(
            f"--seeds: {text!r} invalid; expected A..B, two integer seeds, e.g. 1..200"
        ) from None
    if not (SEED_MIN <= lo <= hi <= SEED_MAX):
        raise ConfigError(
            f"--seeds: {text!r} out of range; expected A <= B, both in {SEED_RANGE_TEXT}"
        )
    if hi - lo + 1 > MAX_RUNS:
        raise ConfigError(f"--seeds: {hi - lo + 1:,} runs; expected at most {MAX_RUNS:,}")
    return range(lo, hi + 1)


def seed_runs(
    profile: str, meter: MeterConfig, seeds: range, load_seed: int | None = None
) -> list[MeterRun]:
    """One ``meter`` per accuracy seed, all on the same load."""
    return [
        MeterRun(
            label=f"seed-{seed}",
            profile=profile,
            config=replace(meter, accuracy=replace(meter.accuracy, seed=seed)),
            load_seed=load_seed,
        )
        for seed in seeds
    ]


@dataclass(frozen=True, slots=True)
class _Job:
    run: MeterRun
    duration_s: float | None
    step_s: float


@lru_cache(maxsize=32)
def _profile(ref: str) -> Profile:
    return load_profile(ref)


def _ideal(run: MeterRun) -> MeterRun:
    return replace(
        run,
        label="reference",
        config=replace(run.config, accuracy=AccuracyConfig(), serial_number="MM00000001"),
    )


class _SharedSampler(Sampler):
    """A sampler handing the same block to every meter of a group that asks for it.

    The meters of a study mostly run the same load (``--seeds``: one profile, one
    noise seed), and a sampler is a pure function of time, so a group advanced in
    lockstep samples each block once. The block is immutable (the core never writes
    its inputs); the last few are kept, for a step split at profile commands.
    """

    def __init__(self, profile: Profile, seed: int | None) -> None:
        super().__init__(profile.spec, profile.spec.seed if seed is None else seed)
        self._recent: OrderedDict[tuple[float, float, int], SampleBlock] = OrderedDict()

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        key = (t0_s, dt_s, n)
        if key not in self._recent:
            self._recent[key] = super().block(t0_s, dt_s, n)
            if len(self._recent) > SHARED_BLOCKS:
                self._recent.popitem(last=False)
        return self._recent[key]


def _run_group(jobs: Sequence[_Job]) -> list[dict[str, Any]]:
    """Drive a group of meters in lockstep (a block each in turn); their rows in order."""
    keep_freed_memory()
    samplers: dict[tuple[str, int | None], _SharedSampler] = {}
    cores: list[MeterCore] = []
    loops: list[Iterator[list[Event]]] = []
    for job in jobs:
        run = job.run
        profile = _profile(run.profile)
        n, tail_s = steps(profile, SimSettings(duration_s=job.duration_s, step_s=job.step_s))
        key = (run.profile, run.load_seed)
        sampler = samplers.setdefault(key, _SharedSampler(profile, run.load_seed))
        core = MeterCore(run.config, emit_edges=False, emit_series=False)
        loop = drive(core, sampler, 0.0, job.step_s, n, BLOCK_SAMPLES)
        if tail_s:  # a shorter last step, as simulate runs it: the whole duration, no more
            loop = itertools.chain(loop, drive(core, sampler, n * job.step_s, tail_s, 1))
        cores.append(core)
        loops.append(loop)
    active = loops
    while active:
        active = [loop for loop in active if next(loop, None) is not None]
    return [_row(job.run, core) for job, core in zip(jobs, cores, strict=True)]


def _row(run: MeterRun, core: MeterCore) -> dict[str, Any]:
    """The registers at the end as a row (no reference yet)."""
    snap = core.snapshot()
    return {
        "label": run.label,
        "profile": _profile(run.profile).name,
        "model": run.config.model.name,
        "accuracy_seed": run.config.accuracy.seed,
        "load_seed": run.load_seed,
        "energy_delivered_wh": snap.energy_delivered_wh,
        "energy_delivered_uj": snap.energy_delivered_uj,
        "energy_received_wh": snap.energy_received_wh,
        "energy_l1_wh": snap.energy_l1_wh,
        "energy_l2_wh": snap.energy_l2_wh,
        "pulses_10wh": snap.pulses_10wh,
        "pulses_100wh": snap.pulses_100wh,
        "pulses_1000wh": snap.pulses_1000wh,
        "counter_counts": snap.counter_counts,
        "demand_max_kw": snap.demand_max_kw,
        "error_code": snap.error_code,
    }


def _workers_context() -> multiprocessing.context.BaseContext:
    """How workers start: forked from this process when that is safe (Linux, no other
    thread: a fork copies one thread), so they start in milliseconds with everything
    imported; else from a fork server that imports this module once."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def _reference_key(run: MeterRun) -> tuple[str, int | None, str, int]:
    return (run.profile, run.load_seed, run.config.model.name, int(run.config.registration_mode))


def run_all(
    runs: Sequence[MeterRun], *, duration_s: float | None, step_s: float = 1.0, jobs: int = 1
) -> list[dict[str, Any]]:
    """Every run's row, in input order, with its error against the ideal reference meter.

    Raises ConfigError for a bad step, duration or profile (checked here, before any
    worker starts).
    """
    if not runs:
        raise ConfigError("no meters to simulate; expected at least one")
    if len(runs) > MAX_RUNS:
        raise ConfigError(f"{len(runs):,} meters; expected at most {MAX_RUNS:,}")
    if jobs < 1:
        raise ConfigError(f"--jobs: {jobs} invalid; expected at least 1")
    settings = SimSettings(duration_s=duration_s, step_s=step_s)
    for ref in sorted({r.profile for r in runs}):
        steps(_profile(ref), settings)  # a bad profile or duration fails here
    references = {_reference_key(r): _ideal(r) for r in runs}
    keys = list(references)
    todo = [_Job(r, duration_s, step_s) for r in (*runs, *references.values())]
    # Groups of meters run in lockstep (one sampling per block per group), several per
    # worker so the workers finish together; the rows do not depend on the grouping.
    size = max(1, min(GROUP_RUNS, -(-len(todo) // (jobs * 8))))
    groups = [todo[k : k + size] for k in range(0, len(todo), size)]
    if jobs == 1:
        rows = [row for group in groups for row in _run_group(group)]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=_workers_context()) as pool:
            rows = [row for group in pool.map(_run_group, groups) for row in group]
    ideal = {key: rows[len(runs) + i]["energy_delivered_uj"] for i, key in enumerate(keys)}
    out = []
    for run, row in zip(runs, rows, strict=False):
        ref_uj = ideal[_reference_key(run)]
        row["reference_delivered_uj"] = ref_uj
        row["error_pct"] = (row["energy_delivered_uj"] / ref_uj - 1.0) * 100.0 if ref_uj else 0.0
        out.append(row)
    return out


def table_csv(rows: Sequence[dict[str, Any]]) -> str:
    """The summary table as CSV text (``COLUMNS``; empty cell for None)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if row[c] is None else _cell(row[c]) for c in COLUMNS])
    return buf.getvalue()


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def population(rows: Sequence[dict[str, Any]]) -> dict[str, float | int]:
    """Spread of the population's registration error (percent) and delivered energy."""
    errors = [float(r["error_pct"]) for r in rows]
    n = len(errors)
    mean = math.fsum(errors) / n
    var = math.fsum((e - mean) ** 2 for e in errors) / (n - 1) if n > 1 else 0.0
    return {
        "meters": n,
        "error_pct_mean": mean,
        "error_pct_std": math.sqrt(var),
        "error_pct_min": min(errors),
        "error_pct_max": max(errors),
        "energy_delivered_wh_mean": uj_to_wh(math.fsum(r["energy_delivered_uj"] for r in rows) / n),
    }
