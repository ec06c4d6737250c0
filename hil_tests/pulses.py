"""The pulses target: one recording of the meter's pulse output over the rig's load,
judged window by window with the mirror's bound.

Theory of operation
-------------------
``--target pulses:URL --load FILE``: the rig (:mod:`hil_tests.rig`) applies the load
profile FILE from rig time 0; :func:`record` reads the pulse source URL (a ``devices``
source, stamped on the rig's clock) until the profile's end. Every counted edge is a
:class:`Mark`: its running count, when it was reported and how long before that it
may have happened (0 for timestamped edges, the poll period for a polled counter).

- A C12.1 point is measured where the load holds the point's conditions: the
  longest constant stretch of FILE (:func:`constant_runs`) with the point's volts,
  amperes, PF and frequency. Its window runs from the first mark after the settle
  time to the last mark in the stretch. Expected energy is V·I·PF over the marks'
  times, computed here; the registered energy is counts x Wh per count. The error's
  uncertainty is :class:`twin.mirror.Bound` (one edge, Kh/2; the marks' timing; the
  rig's stated accuracy) and the verdict is :func:`twin.mirror.judge` against the
  point's limit: within (pass), outside or undecided (both fail).
- Durations come from Kh as on the register targets (``c12.py``) with the output's
  resolution Kh/2: one edge at most a tenth of the limit, ``t = Kh/2 / (0.1 x limit x P)``;
  a stretch shorter than that skips the point, saying how long it must be.
  :func:`rig_load` writes a load that holds every point long enough.
- Energy over the whole load: the mirror's :class:`~twin.mirror.CrossCheck` against
  the model of FILE (:class:`~twin.mirror.ProfileReference`), every window of its
  sequential test included.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import math
from dataclasses import dataclass, replace

import numpy as np

from devices import PulseSource, open_source
from hil_tests.c12 import ACCURACY, CREEP, SETTLE_S, Point, Row, points, starting_power_w
from hil_tests.rig import Rig
from hil_tests.scenario import Scenario, Segment
from twin.core import MeterModel
from twin.hil import Load
from twin.loadprofile import Profile
from twin.mirror import (
    Check,
    CrossCheck,
    EdgeMark,
    ProfileReference,
    Verdict,
    Window,
    check_window,
    judge,
)

RECORD_STEP_S = 3600.0  # rig time per wait while recording (the reader runs meanwhile)
MARGIN_EDGES = 3  # a rig stretch holds this many edge periods beyond the window


@dataclass(frozen=True, slots=True)
class Mark:
    """A reading with new counts: ``total`` after it, within [at_s - uncertainty_s, at_s]."""

    at_s: float
    uncertainty_s: float
    counts: int
    total: int


@dataclass(frozen=True, slots=True)
class PulseRun:
    """What the meter's pulse output showed over one pass of the load."""

    source_id: str
    kh_wh: float
    wh_per_count: float
    load: Profile
    reference_pct: float
    marks: tuple[Mark, ...]

    @property
    def edge_wh(self) -> float:
        """One edge of the 50 %-duty output: the resolution of a window's ends."""
        return self.kh_wh / 2

    def total_at(self, t_s: float) -> int:
        """The running count at ``t_s`` (by report time)."""
        i = bisect.bisect_right([m.at_s for m in self.marks], t_s)
        if i:
            return self.marks[i - 1].total
        return self.marks[0].total - self.marks[0].counts if self.marks else 0


async def record(url: str, load: Profile, rig: Rig, reference_pct: float = 0.0) -> PulseRun:
    """Read ``url`` while ``rig`` applies ``load`` from its time 0 to the load's end."""
    source: PulseSource = open_source(url, clock=rig.now_s)
    marks: list[Mark] = []

    async def reader() -> None:
        async for r in source:
            if r.counts > 0:
                marks.append(Mark(r.at_s, r.uncertainty_s, r.counts, r.total_counts))

    async with source:
        task = asyncio.create_task(reader(), name="hil-pulses")
        await rig.start()
        try:
            while (left_s := load.duration_s - rig.now_s()) > 0:
                await rig.wait(min(RECORD_STEP_S, left_s), source)
        finally:
            await rig.stop()
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        config = source.config
    return PulseRun(
        source.source_id, config.kh_wh, config.wh_per_count, load, reference_pct, tuple(marks)
    )


@dataclass(frozen=True, slots=True)
class Run:
    """A stretch of the load with constant inputs."""

    t0_s: float
    t1_s: float
    l1: Load
    l2: Load
    frequency_hz: float

    def matches(self, point: Point, elements: int) -> bool:
        same = _same_load(self.l1, point.l1) and math.isclose(self.frequency_hz, point.frequency_hz)
        return same and (elements == 1 or _same_load(self.l2, point.l2))


def _same_load(a: Load, b: Load) -> bool:
    close = all(
        math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
        for x, y in ((a.voltage_v, b.voltage_v), (a.current_a, b.current_a), (a.pf, b.pf))
    )
    return close and (a.pf == 1 or a.current_a == 0 or a.leading == b.leading)


def constant_runs(load: Profile) -> list[Run]:
    """The load's stretches of constant inputs, from 1 s samples of one pass."""
    n = math.ceil(load.duration_s)
    b = load.sampler().block(0.0, 1.0, n)
    keys = np.vstack([b.voltage_v, b.current_a, np.abs(b.cos_phi), b.leading, b.frequency_hz])
    cuts = [0, *(np.flatnonzero(np.any(np.diff(keys, axis=1) != 0, axis=0)) + 1).tolist(), n]
    out = []
    for i0, i1 in itertools.pairwise(cuts):
        loads = [
            Load(
                float(b.voltage_v[k, i0]),
                float(b.current_a[k, i0]),
                float(abs(b.cos_phi[k, i0])),
                bool(b.leading[k, i0]),
            )
            for k in (0, 1)
        ]
        out.append(Run(float(i0), float(i1), *loads, float(b.frequency_hz[i0])))
    return out


@dataclass(frozen=True, slots=True)
class Measured:
    row: Row
    message: str


def needed_s(point: Point, model: MeterModel, edge_wh: float) -> float:
    start_w = starting_power_w(model.ct_primary_a, model.elements)
    return point.duration_s(model.elements, edge_wh, start_w)


def measure(point: Point, run: PulseRun, model: MeterModel) -> Measured | str:
    """The point's row from the recording, or why the load cannot answer it."""
    els = model.elements
    stretches = [r for r in constant_runs(run.load) if r.matches(point, els)]
    if not stretches:
        return f"{point.title}: the load never applies {point.conditions(els)}"
    stretch = max(stretches, key=lambda r: r.t1_s - r.t0_s)
    t0, t1 = stretch.t0_s + SETTLE_S, stretch.t1_s
    need = needed_s(point, model, run.edge_wh)
    if t1 - t0 < need:
        return (
            f"{point.title}: the load holds it {t1 - t0:g} s after settling; with Kh "
            f"{run.kh_wh:g} Wh a window needs {need:g} s (one edge, Kh/2, within a tenth "
            "of the limit)"
        )
    power_w = point.power_w(els)
    if point.kind != ACCURACY:
        counts = run.total_at(t1) - run.total_at(t0)
        registered = counts * run.wh_per_count
        passed = counts == 0 if point.kind == CREEP else counts > 0
        row = Row(
            point.key,
            point.title,
            point.conditions(els),
            t1 - t0,
            power_w * (t1 - t0) / 3600.0,
            registered,
            "0 pulses" if point.kind == CREEP else "pulses",
            passed,
        )
        return Measured(row, f"{point.title}: {counts} pulse count(s) in {t1 - t0:g} s")
    inside = [m for m in run.marks if m.at_s - m.uncertainty_s >= t0 and m.at_s <= t1]
    if len(inside) < 2:
        expected = power_w * (t1 - t0) / 3600.0
        row = Row(
            point.key,
            point.title,
            point.conditions(els),
            t1 - t0,
            expected,
            0.0,
            f"±{point.limit_pct:g} %",
            False,
        )
        return Measured(row, f"{point.title}: fewer than two pulse counts in {t1 - t0:g} s")
    apparent_w = point.l1.voltage_v * point.l1.current_a + (
        point.l2.voltage_v * point.l2.current_a if els == 2 else 0.0
    )

    def mark(m: Mark) -> EdgeMark:
        return EdgeMark(
            m.total,
            m.at_s,
            m.uncertainty_s,
            power_w * (m.at_s - m.uncertainty_s) / 3600.0,
            power_w * m.at_s / 3600.0,
            apparent_w * m.at_s / 3600.0,
        )

    window = Window(
        mark(inside[0]), mark(inside[-1]), run.wh_per_count, run.edge_wh, run.reference_pct
    )
    check = check_window(window)
    assert check.bound is not None
    bound = replace(check.bound, class_limit_pct=point.limit_pct)
    verdict = judge(check.error_pct, bound)
    row = Row(
        point.key,
        point.title,
        point.conditions(els),
        window.duration_s,
        window.model_wh,
        window.physical_wh,
        f"±{point.limit_pct:g} %",
        verdict is Verdict.WITHIN_CLASS,
        bound.uncertainty_pct,
    )
    return Measured(
        row,
        f"{point.title}: error {check.error_pct:+.3f} ± {bound.uncertainty_pct:.3f} % is "
        f"{verdict.name.lower().replace('_', ' ')} ±{point.limit_pct:g} %",
    )


def cross_check(run: PulseRun, model: MeterModel) -> tuple[Check, float]:
    """The mirror's verdict on the whole recording against the model of the load, and
    the energy the model registered over the whole load (Wh)."""
    end_s = run.load.duration_s
    reference = ProfileReference(
        run.load, model, uncertainty_pct=run.reference_pct, history_s=end_s + 1.0
    )
    reference.advance_to(end_s)  # the whole load kept: each mark is then a lookup
    check = CrossCheck(
        wh_per_count=run.wh_per_count, edge_wh=run.edge_wh, reference_pct=run.reference_pct
    )
    for m in run.marks:
        hi = reference.energy_at(m.at_s)
        lo = reference.energy_at(m.at_s - m.uncertainty_s)
        if hi is None or lo is None:  # before the load started: a new window
            check.restart()
            continue
        check.add(EdgeMark(m.total, m.at_s, m.uncertainty_s, lo[0], hi[0], hi[1]))
    total = reference.energy_at(end_s)
    return check.verdict(), total[0] if total is not None else 0.0


def rig_load(model: MeterModel, kh_wh: float) -> Scenario:
    """A load holding every C12.1 point of ``model`` long enough for a Kh output."""
    segments = []
    for point in points(model.ct_primary_a, model.elements):
        power_w = point.power_w(model.elements)
        margin_s = MARGIN_EDGES * kh_wh * 3600.0 / power_w if power_w > 0 else 0.0
        duration_s = SETTLE_S + needed_s(point, model, kh_wh / 2) + math.ceil(margin_s)
        segments.append(Segment(duration_s, point.l1, point.l2, point.frequency_hz))
    return Scenario(f"rig-{model.name}-kh{kh_wh:g}", tuple(segments))
