"""Batch simulation: a profile through the meter core as fast as possible, no servers.

Theory of operation. :func:`simulate` builds one :class:`MeterCore` and hands it to
``twin.drive.drive`` (the one stepping loop, shared with the live twin) in blocks
of about a day of samples, so the core's per-call cost is paid a few hundred
times a year, not per sample. The core is a small subclass, :class:`_RecordingCore`,
that passes every block it is given, its events and the registers before and
after it to a :class:`~twin.batch.recorder.Recorder`; so the time series sees exactly
the samples and events the registers came from, without sampling the profile twice.

Everything runs on the calling thread, one block after the other: the sampler, the
core and the recorder each do a few dozen numpy operations on arrays of a day
(0.1-1 ms each), too short for numpy's release of the interpreter lock to pay. On
the year at 1 s, helper threads for the sampler and the recorder cost 0.4-0.9 s of
extra CPU in lock hand-offs and gained no wall time (1.0-1.1 s on one thread,
1.4-1.5 s with both helpers); the second core is left to the processes the CLI
forks (the plot process importing matplotlib meanwhile). A process, not a thread,
may sample ahead: with ``samples_ahead`` a long run's blocks come from a child
forked before the run (``twin.batch.samplesahead``) when it has them ready, and are
sampled here when it has not; the blocks are the same either way.

Energy is never short: when ``--step`` does not divide the duration, the whole
steps are followed by one shorter last step (the core takes any sample length per
block), so a 3600 s profile at ``--step 7`` runs 514 steps of 7 s and one of 2 s.
What a step cannot show is said once: the core's ``StepTooCoarse`` (a sample held
two or more edges of a pulse output) becomes a line of the summary's ``warnings``,
as does a single-element model on a profile that loads L2.

Nothing here reads the wall clock: the same profile, model and seeds give the same
series and summary byte for byte.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import math
import platform
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.batch.eventlog import EventLog
from twin.batch.recorder import Recorder
from twin.batch.samplesahead import DriveRun, sampled_ahead
from twin.core import (
    AccuracyConfig,
    Command,
    Event,
    MeterConfig,
    MeterCore,
    MeterModel,
    PulseEdges,
    SampleBlock,
    StepTooCoarse,
)
from twin.drive import drive
from twin.errors import ConfigError
from twin.loadprofile import Profile
from twin.units import SEED_MAX, SEED_MIN, SEED_RANGE_TEXT, uj_to_kwh

#: The shortest last step worth running: below it the profile has simply ended.
MIN_TAIL_S = 1e-6
#: Target block length in samples: each block costs a sampler call, a snapshot and
#: the recorder's bookkeeping (~1 ms), so day-long blocks (365 a year) keep that under
#: 5 % of a run; the series, events and summary do not depend on it (block invariance).
BLOCK_SAMPLES = 86_400

#: The series is held in memory (about 130 bytes a row): ten years of minutes.
MAX_ROWS = 5_256_000
ProgressFn = Callable[[int, int], None]
#: Called after each block: (samples done, total, the events so far).
BlockHook = Callable[[int, int, EventLog], None]
#: glibc's mallopt parameters, and what a batch run sets them to (keep_freed_memory).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
HEAP_TRIM_BYTES = 1 << 30
HEAP_MMAP_BYTES = 32 << 20  # glibc's largest mmap threshold on 64-bit


@functools.cache
def keep_freed_memory() -> bool:
    """Let glibc reuse freed memory for the next block instead of returning it to the OS.

    A run allocates and frees day-sized arrays (0.7-1.4 MB each) thousands of times. By
    default glibc serves each from fresh pages (mmap, or heap trimmed after the last
    free), so every block pays a page fault per 4 KiB it touches: on this machine that
    was half the sampler's time. Called once per process by the batch runners; the
    process then keeps its peak heap until it exits. Returns whether it applied
    (glibc only; elsewhere nothing changes).
    """
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(
        mallopt(_M_MMAP_THRESHOLD, HEAP_MMAP_BYTES) and mallopt(_M_TRIM_THRESHOLD, HEAP_TRIM_BYTES)
    )


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a run and its writing go on: a year keeps
    ~10^5 small objects (events, demand points) that every full collection walked for
    almost nothing collected (10-20 % of the run's CPU). What is alive at the start is
    frozen, so forked processes do not write to those pages either. Process-wide, so
    the simulate CLI uses it, never the library; restored on the way out."""
    enabled = gc.isenabled()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
        gc.unfreeze()


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Validated options of one run (parsed once at the CLI boundary)."""

    model: MeterModel = field(default_factory=lambda: MeterModel.parse("MMD-200A"))
    duration_s: float | None = None  # None: the profile's own duration
    step_s: float = 1.0
    seed: int | None = None  # the profile's noise
    interval_s: float = 60.0
    edges: bool = False
    accuracy_seed: int | None = None  # a per-meter error curve within class; None: ideal
    # The meter to run, its settings already chosen (the CLI resolves its options over
    # the profile's own); None: ``model``, ``accuracy_seed`` and the profile's settings.
    meter: MeterConfig | None = None

    def __post_init__(self) -> None:
        if self.meter is not None:
            object.__setattr__(self, "model", self.meter.model)
        if not (math.isfinite(self.step_s) and 1e-3 <= self.step_s <= 86_400):
            raise ConfigError(f"--step: {self.step_s:g} s out of range; expected 0.001..86400 s")
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ConfigError(f"--interval: {self.interval_s:g} s invalid; expected > 0 s")
        for option, seed in (("--seed", self.seed), ("--accuracy-seed", self.accuracy_seed)):
            if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
                raise ConfigError(f"{option}: {seed} out of range; expected {SEED_RANGE_TEXT}")
        if self.duration_s is not None and not (
            math.isfinite(self.duration_s) and self.duration_s >= self.step_s
        ):
            raise ConfigError(
                f"--duration: {self.duration_s:g} s invalid; expected at least one step "
                f"({self.step_s:g} s)"
            )

    @property
    def samples_per_row(self) -> int:
        return max(1, round(self.interval_s / self.step_s))


class _RecordingCore(MeterCore):
    """The meter core, handing each block and command to a recorder: values (the block,
    the core's events, frozen snapshots) that nothing changes afterwards.

    Only ``advance`` and ``apply`` change the core, so the registers before a block
    are the snapshot taken after the last of them: one snapshot per call."""

    def __init__(self, config: MeterConfig, recorder: Recorder) -> None:
        super().__init__(config, emit_edges=True, emit_series=True)
        self.recorder = recorder
        self._last = self.snapshot()

    def advance(self, block: SampleBlock) -> list[Event]:
        before = self._last
        events = super().advance(block)
        self._last = self.snapshot()
        self.recorder.block(block, events, before, self._last)
        return events

    def apply(self, command: Command) -> list[Event]:
        events = super().apply(command)
        self._last = self.snapshot()
        self.recorder.command(events, self._last)
        return events


@dataclass(frozen=True, eq=False)
class SimResult:
    """A run's summary and events, and its time series, made from the recorder on first
    use (a caller may start other work first, e.g. send the events process the rest)."""

    summary: dict[str, Any]
    events: EventLog
    edges: list[PulseEdges]
    unpowered_spans: list[tuple[float, float]]
    interval_s: float
    config: MeterConfig  # the meter that ran
    recorder: Recorder = field(repr=False)

    @functools.cached_property
    def columns(self) -> dict[str, npt.NDArray[Any]]:
        return self.recorder.columns()

    @functools.cached_property
    def count_times(self) -> dict[str, tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """Per count column: each row's first and last count time (NaN: none in the row)."""
        return self.recorder.count_times()


def meter_config(settings: SimSettings, profile: Profile) -> MeterConfig:
    """The simulated meter: ``settings.meter``, else the model with the profile's settings."""
    if settings.meter is not None:
        return settings.meter
    base = MeterConfig(model=settings.model, accuracy=AccuracyConfig(seed=settings.accuracy_seed))
    try:
        return profile.meter_settings.apply(base)
    except ValueError as exc:
        raise ConfigError(f"profile {profile.name!r}: {exc}") from None


def make_core(config: MeterConfig, recorder: Recorder) -> _RecordingCore:
    return _RecordingCore(config, recorder)


def steps(profile: Profile, settings: SimSettings) -> tuple[int, float]:
    """(whole steps, length of a shorter last step or 0): exactly the duration, never past it.

    The 1e-9 absorbs float noise in the ratio, e.g. 0.3 s / 0.1 s = 2.9999999999999996.
    """
    duration = settings.duration_s if settings.duration_s is not None else profile.duration_s
    if duration is None:
        raise ConfigError(f"profile {profile.name!r} has no fixed duration; pass --duration")
    n = math.floor(duration / settings.step_s + 1e-9)
    if n < 1:
        source = "--duration" if settings.duration_s is not None else f"profile {profile.name!r}"
        raise ConfigError(
            f"--step: {settings.step_s:g} s is longer than the duration of {duration:g} s "
            f"(from {source}); expected a step <= the duration"
        )
    tail_s = round(duration - n * settings.step_s, 6)
    return n, (tail_s if tail_s >= MIN_TAIL_S else 0.0)


def simulate(
    profile: Profile,
    settings: SimSettings,
    progress: ProgressFn | None = None,
    each_block: BlockHook | None = None,
    samples_ahead: bool = False,
) -> SimResult:
    """Run ``profile`` through a fresh meter; returns the summary, series and events.
    ``each_block`` sees the events as they come (e.g. ``twin.batch.eventswriter``);
    ``samples_ahead``: the caller may fork (``twin.forking.can_fork``), so a long
    run's blocks may be sampled by a child process (``twin.batch.samplesahead``)."""
    n, tail_s = steps(profile, settings)
    total = n + (tail_s > 0)
    spr = settings.samples_per_row
    if total // spr > MAX_ROWS:
        raise ConfigError(
            f"--interval: {settings.interval_s:g} s gives {total // spr:,} rows; expected at "
            f"most {MAX_ROWS:,} (use a longer --interval)"
        )
    duration_s = n * settings.step_s + tail_s
    runs = [DriveRun(0.0, settings.step_s, n, max(spr, BLOCK_SAMPLES // spr * spr))]
    if tail_s:  # the last, shorter step: the core takes any length per block
        runs.append(DriveRun(n * settings.step_s, tail_s, 1))
    # The child (if any) is forked before the run's arrays exist: it copies no pages of them.
    with sampled_ahead(profile, settings.seed, runs, samples_ahead) as sampler:
        recorder = Recorder(total, settings.step_s, spr, settings.model, duration_s)
        recorder.keep_edges = settings.edges
        core = make_core(meter_config(settings, profile), recorder)
        for _events in drive(core, sampler, *runs[0]):
            if progress is not None:
                progress(recorder.done, total)
            if each_block is not None:
                each_block(recorder.done, total, recorder.events)
        for tail in runs[1:]:
            for _events in drive(core, sampler, *tail):
                pass
    if progress is not None:
        progress(recorder.done, total)
    summary = build_summary(core, recorder, profile, settings)
    return SimResult(
        summary=summary,
        events=recorder.events,
        edges=recorder.edges,
        unpowered_spans=recorder.spans(duration_s),
        interval_s=spr * settings.step_s,
        config=core.config,
        recorder=recorder,
    )


def warnings(coarse: list[StepTooCoarse], profile: Profile, settings: SimSettings) -> list[str]:
    """What the run could not represent, each said once (the summary's ``warnings``);
    ``coarse``: the run's StepTooCoarse events."""
    out = []
    model_warning = profile.model_warning(settings.model)
    if model_warning is not None:
        out.append(model_warning.removeprefix("warning: "))
    if coarse:
        names = [f"{ev.output}" + ("" if ev.output == "counter" else " Wh") for ev in coarse]
        which = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
        out.append(
            f"--step {coarse[0].dt_s:g} s is too coarse for the {which} output"
            f"{'s' if len(names) > 1 else ''}: one sample held two or more pulse edges (from "
            f"{min(ev.time_s for ev in coarse):g} s); edges are placed as if power were "
            "constant within a sample, so a shorter --step shows a load that changes faster"
        )
    return out


def meter_summary(config: MeterConfig) -> dict[str, Any]:
    """The settings the meter ran with (names as the options and fleet keys)."""
    d, s = config.demand, config.supply
    return {
        "registration_mode": config.registration_mode.name.lower(),
        "demand_method": d.method.name.lower(),
        "demand_interval_min": d.interval_min,
        "demand_subintervals": d.subintervals,
        "demand_max_window_h": d.max_window_h,
        "power_up_v": s.power_up_v,
        "power_down_v": s.power_down_v,
        "hold_up_s": s.hold_up_s,
    }


def build_summary(
    core: MeterCore, recorder: Recorder, profile: Profile, settings: SimSettings
) -> dict[str, Any]:
    """The registers at the end of the run plus what happened on the way (JSON-ready)."""
    snap = core.snapshot()
    duration_s = recorder.duration_s
    peak_kw, peak_at = recorder.peak_demand
    return {
        "profile": profile.name,
        "model": settings.model.name,
        "seed": settings.seed,
        "accuracy_seed": settings.accuracy_seed,
        "settings": meter_summary(core.config),
        "duration_s": duration_s,
        "step_s": settings.step_s,
        "samples": recorder.done,
        "energy_delivered_wh": snap.energy_delivered_wh,
        "energy_received_wh": snap.energy_received_wh,
        "energy_l1_wh": snap.energy_l1_wh,
        "energy_l2_wh": snap.energy_l2_wh,
        "energy_delivered_uj": snap.energy_delivered_uj,
        "energy_received_uj": snap.energy_received_uj,
        "energy_l1_uj": snap.energy_l1_uj,
        "energy_l2_uj": snap.energy_l2_uj,
        "energy_delivered_kwh": uj_to_kwh(snap.energy_delivered_uj),
        "pulses": {"10": snap.pulses_10wh, "100": snap.pulses_100wh, "1000": snap.pulses_1000wh},
        "counter_counts": snap.counter_counts,
        "demand_kw": snap.demand_kw,
        "demand_max_kw": snap.demand_max_kw,
        "demand_max_at_s": snap.demand_max_at_s,
        "demand_peak_kw": peak_kw,
        "demand_peak_at_s": peak_at,
        "errors_seen": sorted(recorder.errors_seen),
        "error_code": snap.error_code,
        "status_bits": snap.status_bits,
        "unpowered_s": round(recorder.unpowered_s(duration_s), 6),
        "power_up_count": snap.power_up_count,
        "warnings": warnings(recorder.coarse_steps, profile, settings),
    }
