"""Batch simulation: a profile through the meter core as fast as possible, no servers.

Theory of operation. :func:`simulate` builds one :class:`MeterCore` and hands it to
``twin.drive.drive`` (the one stepping loop, shared with the live twin) in blocks
of about a day of samples, so the core's per-call cost is paid a few hundred
times a year, not per sample. The core is a small subclass, :class:`_RecordingCore`,
that passes every block it is given, its events and the registers before and
after it to a :class:`Recorder`; so the time series sees exactly the samples and
events the registers came from, without sampling the profile twice.

The recorder downsamples to rows of ``interval_s`` with vectorised numpy work
(``reduceat`` over row boundaries inside the block):

- power per element: mean of V·I·cos φ over the row, zero below the starting
  current and while unpowered (what the meter measures);
- cumulative energies at each row end: exact at every block end (the registers,
  in integer µJ); inside a block the register delta is spread over the rows in
  proportion to the measured power, registered as the meter does (clamped per
  registration mode), so the series is smooth and ends exactly on the registers;
- pulses and counter counts per row: from the core's pulse edges (exact);
- demand and maximum demand: step functions from the demand closes and the
  registers after each block; error code and unpowered time from the error and
  power events.

Nothing here reads the wall clock: the same profile, model and seed give the same
series and summary byte for byte.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.core import (
    AccuracyConfig,
    Command,
    DemandClosed,
    ErrorCleared,
    ErrorRaised,
    Event,
    MeterConfig,
    MeterCore,
    MeterModel,
    PowerLost,
    PowerRestored,
    PulseEdges,
    Registration,
    SampleBlock,
    ScalarEvent,
    Snapshot,
    highest_error_codes,
)
from twin.drive import drive
from twin.errors import ConfigError
from twin.loadprofile import Profile
from twin.units import SEED_MAX, SEED_MIN, SEED_RANGE_TEXT, uj_to_kwh, uj_to_wh

FloatArray = npt.NDArray[np.float64]
OUTPUTS = ("10", "100", "1000", "counter")
ENERGIES = ("delivered", "received", "l1", "l2")
#: Target block length in samples: each block costs a sampler call, two snapshots and
#: the recorder's bookkeeping (~1 ms), so day-long blocks (365 a year) keep that under
#: 5 % of a run; the series, events and summary do not depend on it (block invariance).
BLOCK_SAMPLES = 86_400

#: The series is held in memory (about 130 bytes a row): ten years of minutes.
MAX_ROWS = 5_256_000
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SimSettings:
    """Validated options of one run (parsed once at the CLI boundary)."""

    model: MeterModel = field(default_factory=lambda: MeterModel.parse("MMD-200A"))
    duration_s: float | None = None  # None: the profile's own duration
    step_s: float = 1.0
    seed: int | None = None
    interval_s: float = 60.0
    edges: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.step_s) and 1e-3 <= self.step_s <= 86_400):
            raise ConfigError(f"--step: {self.step_s:g} s out of range; expected 0.001..86400 s")
        if not (math.isfinite(self.interval_s) and self.interval_s > 0):
            raise ConfigError(f"--interval: {self.interval_s:g} s invalid; expected > 0 s")
        if self.seed is not None and not SEED_MIN <= self.seed <= SEED_MAX:
            raise ConfigError(f"--seed: {self.seed} out of range; expected {SEED_RANGE_TEXT}")
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


class Recorder:
    """Accumulates the downsampled time series and the event log of one run."""

    def __init__(self, n_samples: int, dt_s: float, samples_per_row: int, model: MeterModel):
        self.n_samples, self.dt_s, self.spr, self.model = n_samples, dt_s, samples_per_row, model
        self.rows = -(-n_samples // samples_per_row)
        self.row_samples = np.full(self.rows, samples_per_row, np.int64)
        self.row_samples[-1] = n_samples - (self.rows - 1) * samples_per_row
        self.power_sum_w = np.zeros((2, self.rows))
        self.energy_uj = {name: np.zeros(self.rows) for name in ENERGIES}
        self.closures = np.zeros((len(OUTPUTS), self.rows), np.int64)
        self.demand_points: list[tuple[float, float, float]] = [(0.0, 0.0, 0.0)]
        self.events: list[ScalarEvent] = []  # everything but pulse edges and series, time order
        self.edges: list[PulseEdges] = []
        self.keep_edges = False
        self.error_points: list[tuple[float, int]] = [(0.0, 0)]  # (t, bitmask of codes)
        self.errors_seen: set[int] = set()
        self.unpowered_spans: list[tuple[float, float]] = []
        self._unpowered_since: float | None = 0.0  # a fresh core starts unpowered
        self._active = 0
        self.peak_demand = (0.0, 0.0)  # (kW, time s)
        self.done = 0  # samples recorded

    # ------------------------------------------------------------ feeding

    def block(
        self, block: SampleBlock, events: list[Event], before: Snapshot, after: Snapshot
    ) -> None:
        """Record one block from the core's own per-sample registration (no second metrology)."""
        reg = next(e for e in events if isinstance(e, Registration))
        n, i0, els = block.n, self.done, self.model.elements
        k0 = (-i0) % self.spr
        starts = np.arange(k0, n, self.spr)
        if k0 or starts.size == 0:
            starts = np.concatenate(([0], starts))
        rows = (i0 + starts) // self.spr
        self.power_sum_w[:els, rows] += np.add.reduceat(reg.power_w, starts, axis=1)
        per_sample = {
            "delivered": reg.delivered_uj,
            "received": reg.received_uj,
            "l1": reg.l1_uj,
            "l2": reg.l2_uj,
        }
        for name, series in per_sample.items():
            lo = int(getattr(before, f"energy_{name}_uj"))
            self.energy_uj[name][rows] = lo + np.cumsum(np.add.reduceat(series, starts))
        self.done += n
        self._events(events)
        self.demand_points.append((after.time_s, after.demand_kw, after.demand_max_kw))

    def command(self, events: list[Event], after: Snapshot) -> None:
        self._events(events)
        self.demand_points.append((after.time_s, after.demand_kw, after.demand_max_kw))

    def _events(self, events: Iterable[Event]) -> None:
        for ev in events:
            if isinstance(ev, PulseEdges):
                self._closures(ev)
                continue
            if isinstance(ev, Registration):
                continue  # recorded by block()
            if isinstance(ev, PowerLost):
                self._unpowered_since = ev.time_s
            elif isinstance(ev, PowerRestored):
                if self._unpowered_since is not None:
                    self.unpowered_spans.append((self._unpowered_since, ev.time_s))
                    self._unpowered_since = None
                self.demand_points.append((ev.time_s, 0.0, 0.0))  # a boot clears demand
            elif isinstance(ev, ErrorRaised | ErrorCleared):
                if isinstance(ev, ErrorRaised):
                    self._active |= 1 << ev.code
                    self.errors_seen.add(ev.code)
                else:
                    self._active &= ~(1 << ev.code)
                self.error_points.append((ev.time_s, self._active))
            elif isinstance(ev, DemandClosed):
                self.demand_points.append((ev.time_s, ev.demand_kw, ev.demand_max_kw))
                if ev.demand_kw > self.peak_demand[0]:
                    self.peak_demand = (ev.demand_kw, ev.time_s)
            self.events.append(ev)

    def _closures(self, ev: PulseEdges) -> None:
        if self.keep_edges:
            self.edges.append(ev)
        # Pulse registers count closures; the counter register counts completed counts,
        # i.e. the coil opening at the end of each count.
        t = ev.time_s[~ev.closed if ev.output == "counter" else ev.closed]
        if t.size == 0:
            return
        # An edge at time t belongs to the row whose interval (start, end] holds t.
        row_s = self.spr * self.dt_s
        rows = np.clip(np.ceil(t / row_s - 1e-9).astype(np.int64) - 1, 0, self.rows - 1)
        first = int(rows[0])
        counts = np.bincount(rows - first)
        self.closures[OUTPUTS.index(ev.output), first : first + counts.size] += counts

    # ------------------------------------------------------------ results

    def unpowered_s(self, end_s: float) -> float:
        spans = self._spans(end_s)
        return float(sum(b - a for a, b in spans))

    def _spans(self, end_s: float) -> list[tuple[float, float]]:
        spans = list(self.unpowered_spans)
        if self._unpowered_since is not None:
            spans.append((self._unpowered_since, end_s))
        return spans

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """The time series: one array per column, names carry their units."""
        row_end_s = np.cumsum(self.row_samples) * self.dt_s
        mean_w = self.power_sum_w / self.row_samples
        cols: dict[str, npt.NDArray[Any]] = {"time_s": row_end_s}
        cols["power_l1_w"], cols["power_l2_w"] = mean_w[0], mean_w[1]
        cols["power_w"] = mean_w[0] + mean_w[1]
        for name in ENERGIES:
            cols[f"energy_{name}_wh"] = uj_to_wh(self.energy_uj[name])
        t, d, m = (np.array(x) for x in zip(*self.demand_points, strict=True))
        at = np.searchsorted(t, row_end_s + 1e-9, side="right") - 1
        cols["demand_kw"], cols["demand_max_kw"] = d[at], m[at]
        for k, out in enumerate(("10wh", "100wh", "1000wh")):
            cols[f"pulses_{out}_count"] = self.closures[k]
        cols["counter_count"] = self.closures[3]
        et, masks = (np.array(x) for x in zip(*self.error_points, strict=True))
        active = masks[np.searchsorted(et, row_end_s + 1e-9, side="right") - 1]
        cols["error_code"] = highest_error_codes(active.astype(np.int64))
        cols["unpowered_s"] = np.diff(self._unpowered_cum(np.append(0.0, row_end_s)))
        return cols

    def _unpowered_cum(self, t: FloatArray) -> FloatArray:
        spans = self._spans(float(t[-1]))
        if not spans:
            return np.zeros_like(t)
        xp = np.array([x for span in spans for x in span])
        lengths = np.array([b - a for a, b in spans])
        before = np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
        fp = np.stack([before, before + lengths], axis=1).ravel()
        return np.asarray(np.interp(t, xp, fp, left=0.0, right=float(lengths.sum())))


class _RecordingCore(MeterCore):
    """The meter core, reporting each block and command to a recorder."""

    recorder: Recorder

    def advance(self, block: SampleBlock) -> list[Event]:
        before = self.snapshot()
        events = super().advance(block)
        self.recorder.block(block, events, before, self.snapshot())
        return events

    def apply(self, command: Command) -> list[Event]:
        events = super().apply(command)
        self.recorder.command(events, self.snapshot())
        return events


@dataclass(frozen=True, slots=True)
class SimResult:
    summary: dict[str, Any]
    columns: dict[str, npt.NDArray[Any]]
    events: list[ScalarEvent]
    edges: list[PulseEdges]
    unpowered_spans: list[tuple[float, float]]
    interval_s: float


def make_core(settings: SimSettings, recorder: Recorder) -> MeterCore:
    config = MeterConfig(model=settings.model, accuracy=AccuracyConfig(seed=settings.seed))
    core = _RecordingCore(config, emit_edges=True, emit_series=True)
    core.recorder = recorder
    return core


def sample_count(profile: Profile, settings: SimSettings) -> int:
    """Whole steps that fit in the duration: never simulates past the profile's end.

    A step that does not divide the duration drops the last partial step (rounding up
    ran a 3600 s profile for 7200 s at --step 2h). The 1e-9 absorbs float noise in
    the ratio, e.g. 0.3 s / 0.1 s = 2.9999999999999996.
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
    return n


def simulate(
    profile: Profile, settings: SimSettings, progress: ProgressFn | None = None
) -> SimResult:
    """Run ``profile`` through a fresh meter; returns the summary, series and events."""
    n = sample_count(profile, settings)
    spr = settings.samples_per_row
    if n // spr > MAX_ROWS:
        raise ConfigError(
            f"--interval: {settings.interval_s:g} s gives {n // spr:,} rows; expected at most "
            f"{MAX_ROWS:,} (use a longer --interval)"
        )
    recorder = Recorder(n, settings.step_s, spr, settings.model)
    recorder.keep_edges = settings.edges
    core = make_core(settings, recorder)
    sampler = profile.sampler(settings.seed)
    max_block = max(spr, BLOCK_SAMPLES // spr * spr)
    for _events in drive(core, sampler, 0.0, settings.step_s, n, max_block=max_block):
        if progress is not None:
            progress(recorder.done, n)
    summary = build_summary(core.snapshot(), recorder, profile.name, settings)
    return SimResult(
        summary=summary,
        columns=recorder.columns(),
        events=recorder.events,
        edges=recorder.edges,
        unpowered_spans=recorder._spans(n * settings.step_s),
        interval_s=spr * settings.step_s,
    )


def build_summary(
    snap: Snapshot, recorder: Recorder, profile_name: str, settings: SimSettings
) -> dict[str, Any]:
    """The registers at the end of the run plus what happened on the way (JSON-ready)."""
    duration_s = recorder.done * settings.step_s
    peak_kw, peak_at = recorder.peak_demand
    return {
        "profile": profile_name,
        "model": settings.model.name,
        "seed": settings.seed,
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
    }
