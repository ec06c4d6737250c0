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
the end (pulse counts are functions of energy, so they need no edges). Every
distinct load and model is also run once through an ideal meter (no error curve)
as the reference, and each row carries its registration error against it in
percent. :func:`run_all` farms groups of runs out to ``jobs`` worker processes
(``jobs == 1`` runs in this process), handing a group to whichever worker frees up;
groups shrink towards the end, so the workers finish within a meter or two of each
other. Rows come back in input order, so the table is byte-identical for any number
of workers. Profiles are loaded once, before the workers fork.

A group's meters are rows of one :class:`~twin.core.MeterBank` (each still advanced
alone, as its own core), so they share the bank's per-sample buffers: one set of
megabytes per group, not per meter. A group advances window by window
(``WINDOW_BLOCKS`` blocks): each meter in turn runs the whole window, so those
buffers stay in the CPU's cache from block to block. (Advancing a group's meters a
block each in turn, each with buffers of its own, wrote every meter's megabytes cold
every block: memory bandwidth, which two workers share, and a heap of every core's
buffers at once.) The meters
on one load read the same sampled blocks (a sampler is a pure function of time, a
block immutable), which a process keeps up to ``KEPT_BYTES`` (least recently used
dropped first) from group to group: a study that fits samples each block of a load
once per process, a longer one once per group and window.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import multiprocessing
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, fields, replace
from functools import lru_cache
from typing import Any

import numpy as np

from twin.batch.simulate import SimSettings, keep_freed_memory, steps
from twin.core import AccuracyConfig, Event, MeterBank, MeterConfig, MeterCore, SampleBlock
from twin.drive import drive
from twin.errors import ConfigError
from twin.loadprofile import Profile, Sampler, load_profile
from twin.units import SEED_MAX, SEED_MIN, SEED_RANGE_TEXT, uj_to_wh

#: Samples per call of the core: a day at 1 s.
BLOCK_SAMPLES = 86_400
#: The most runs one study may hold (a row each, kept in memory).
MAX_RUNS = 100_000
#: The most meters in one group (rows of one bank, in memory at once).
GROUP_RUNS = 32
#: A group takes at most this share of the runs left for each worker, so groups
#: shrink towards the end and the workers finish within a meter or two of each other
#: (a group is handed out whenever a worker frees up).
GROUP_SHARE = 0.5
#: Blocks each meter of a group runs before the next meter's turn (16 days at 1 s).
WINDOW_BLOCKS = 16
#: Sampled blocks a process keeps, in bytes: ~90 days of a load with noisy current at
#: 1 s (1.4 MB a day), so such a study samples each block once per process; a window
#: of any load (at most ~6 MB a day-block) fits.
KEPT_BYTES = 128 << 20

#: The columns read from a meter's snapshot at the end (its attributes' names).
SNAPSHOT_COLUMNS = (
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
)
#: Columns of the summary table, in order.
COLUMNS = (
    *("label", "profile", "model", "accuracy_seed", "load_seed"),
    *SNAPSHOT_COLUMNS,
    *("reference_delivered_uj", "error_pct"),
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
    """A sampler handing the same block to every meter that asks for it.

    The meters of a study mostly run the same load (``--seeds``: one profile, one
    noise seed) and a sampler is a pure function of time, so a block is sampled once
    and kept (by ``loads``, for all the process's samplers) while meters read it.
    The block is immutable (the core never writes its inputs).
    """

    def __init__(self, profile: Profile, seed: int | None, loads: _Loads) -> None:
        super().__init__(profile.spec, profile.spec.seed if seed is None else seed)
        self._loads = loads

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        key = (self, t0_s, dt_s, n)
        found = self._loads.kept(key)
        if found is None:
            found = super().block(t0_s, dt_s, n)
            self._loads.keep(key, found)
        return found


class _Loads:
    """A process's samplers, one per load, and the blocks they keep (least recently
    used dropped first past ``KEPT_BYTES``). Workers keep theirs from group to group."""

    def __init__(self) -> None:
        self._samplers: dict[tuple[str, int | None], _SharedSampler] = {}
        self._kept: OrderedDict[Hashable, tuple[SampleBlock, int]] = OrderedDict()
        self._kept_bytes = 0

    def sampler(self, run: MeterRun) -> _SharedSampler:
        key = (run.profile, run.load_seed)
        if key not in self._samplers:
            self._samplers[key] = _SharedSampler(_profile(run.profile), run.load_seed, self)
        return self._samplers[key]

    def kept(self, key: Hashable) -> SampleBlock | None:
        entry = self._kept.get(key)
        if entry is None:
            return None
        self._kept.move_to_end(key)
        return entry[0]

    def keep(self, key: Hashable, block: SampleBlock) -> None:
        size = _block_bytes(block)
        self._kept[key] = (block, size)
        self._kept_bytes += size
        while self._kept_bytes > KEPT_BYTES and len(self._kept) > 1:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._kept_bytes -= dropped


def _block_bytes(block: SampleBlock) -> int:
    """The memory of a block's arrays (a broadcast dimension costs none)."""
    total = 0
    for f in fields(block):
        value = getattr(block, f.name)
        if isinstance(value, np.ndarray):
            kept = (d for d, stride in zip(value.shape, value.strides, strict=True) if stride)
            total += value.itemsize * math.prod(kept)
    return total


@lru_cache(maxsize=1)
def _worker_loads() -> _Loads:
    """The loads of this worker process (made on its first group)."""
    return _Loads()


def _start_worker() -> None:
    keep_freed_memory()  # process-wide: the CLI's process has it, a worker sets its own


def _run_worker_group(jobs: Sequence[_Job]) -> list[dict[str, Any]]:
    return _run_group(jobs, _worker_loads())


class _Meter:
    """One meter of a group: its core and the blocks that drive it."""

    def __init__(self, index: int, job: _Job, loads: _Loads, bank: MeterBank) -> None:
        run = job.run
        n, tail_s = steps(
            _profile(run.profile), SimSettings(duration_s=job.duration_s, step_s=job.step_s)
        )
        sampler = loads.sampler(run)
        self.index = index
        self.run = run
        self.core = MeterCore.in_bank(bank, run.config)
        loop = drive(self.core, sampler, 0.0, job.step_s, n, BLOCK_SAMPLES)
        if tail_s:  # a shorter last step, as simulate runs it: the whole duration, no more
            loop = itertools.chain(loop, drive(self.core, sampler, n * job.step_s, tail_s, 1))
        self._blocks: Iterator[list[Event]] = loop

    def advance(self, blocks: int) -> bool:
        """Run up to ``blocks`` blocks; whether any are left."""
        return all(next(self._blocks, None) is not None for _ in range(blocks))


def _run_group(jobs: Sequence[_Job], loads: _Loads) -> list[dict[str, Any]]:
    """Drive a group of meters window by window, a meter at a time; their rows in order."""
    # The meters of one load one after another: a window's blocks are read while kept.
    first: dict[tuple[str, int | None], int] = {}
    for job in jobs:
        first.setdefault((job.run.profile, job.run.load_seed), len(first))
    order = sorted(
        range(len(jobs)), key=lambda i: first[(jobs[i].run.profile, jobs[i].run.load_seed)]
    )
    bank = MeterBank(emit_edges=False, emit_series=False)
    pending = deque(_Meter(i, jobs[i], loads, bank) for i in order)
    rows: list[dict[str, Any]] = [{} for _ in jobs]
    while pending:
        meter = pending.popleft()
        if meter.advance(WINDOW_BLOCKS):
            pending.append(meter)
        else:
            rows[meter.index] = _row(meter.run, meter.core)
    return rows


def _row(run: MeterRun, core: MeterCore) -> dict[str, Any]:
    """The registers at the end as a row (no reference yet)."""
    snap = core.snapshot()
    row: dict[str, Any] = {
        "label": run.label,
        "profile": _profile(run.profile).name,
        "model": run.config.model.name,
        "accuracy_seed": run.config.accuracy.seed,
        "load_seed": run.load_seed,
    }
    row.update((column, getattr(snap, column)) for column in SNAPSHOT_COLUMNS)
    return row


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


def _groups(todo: list[_Job], jobs: int) -> list[list[_Job]]:
    """``todo`` in order, in groups of at most ``GROUP_RUNS``, each at most
    ``GROUP_SHARE`` of what is left per worker (the last ones a single meter)."""
    groups: list[list[_Job]] = []
    k = 0
    while k < len(todo):
        size = min(GROUP_RUNS, max(1, math.ceil((len(todo) - k) * GROUP_SHARE / jobs)))
        groups.append(todo[k : k + size])
        k += size
    return groups


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
    groups = _groups(todo, jobs)  # the rows do not depend on the grouping
    if jobs == 1:
        loads = _Loads()
        rows = [row for group in groups for row in _run_group(group, loads)]
    else:
        context = _workers_context()
        with ProcessPoolExecutor(
            max_workers=jobs, mp_context=context, initializer=_start_worker
        ) as pool:
            rows = [row for group in pool.map(_run_worker_group, groups) for row in group]
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
