"""The batch run's recorder: the core's blocks and events downsampled to rows.

Theory of operation. :class:`Recorder` is handed every block the core advanced, its
events and the registers before and after it (see ``twin.batch.simulate``), and
keeps rows of ``samples_per_row`` samples with vectorised numpy work (``reduceat``
over row boundaries inside the block):

- power per element: the time-weighted mean of the core's measured power over the
  row (zero below the starting current and while unpowered); the last sample of a
  run may be shorter than the others (a step that does not divide the duration),
  so every sum is weighted by its sample's length;
- input voltage per line: the time-weighted mean, and the lowest sample of either
  line in the row (a one-second dip inside a minute shows);
- cumulative energies at each row end: exact at every block end (the registers,
  in integer µJ); inside a block the register delta is spread over the rows in
  proportion to the registered energy per sample, so the series ends exactly on the
  registers;
- pulses and counter counts per row, and the times of each row's first and last
  count (what a rate without aliasing needs, see ``twin.batch.plots``);
- demand and maximum demand: step functions from the demand closes and the
  registers after each block; error code and unpowered time from the error and
  power events.

Nothing here reads the wall clock: the same inputs give the same series byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.core import (
    DemandClosed,
    DemandCloses,
    ErrorCleared,
    ErrorRaised,
    Event,
    MeterModel,
    PowerLost,
    PowerRestored,
    PulseEdges,
    Registration,
    SampleBlock,
    ScalarEvent,
    Snapshot,
    StepTooCoarse,
    highest_error_codes,
)
from twin.units import uj_to_wh

FloatArray = npt.NDArray[np.float64]
#: The outputs counted per row, in column order: three pulse outputs and the counter.
OUTPUTS = ("10", "100", "1000", "counter")
COUNT_COLUMNS = ("pulses_10wh_count", "pulses_100wh_count", "pulses_1000wh_count", "counter_count")
ENERGIES = ("delivered", "received", "l1", "l2")


class Recorder:
    """Accumulates the downsampled time series and the event log of one run.

    ``n_samples`` counts every sample, a shorter last one included; ``duration_s``
    (default ``n_samples * dt_s``) is where the last row ends.
    """

    def __init__(
        self,
        n_samples: int,
        dt_s: float,
        samples_per_row: int,
        model: MeterModel,
        duration_s: float | None = None,
    ) -> None:
        self.n_samples, self.dt_s, self.spr, self.model = n_samples, dt_s, samples_per_row, model
        self.duration_s = n_samples * dt_s if duration_s is None else duration_s
        self.rows = -(-n_samples // samples_per_row)
        self.power_ws = np.zeros((2, self.rows))  # W x s per element and row
        self.voltage_vs = np.zeros((2, self.rows))  # V x s per line and row
        self.voltage_min_v = np.full(self.rows, np.inf)
        self.energy_uj = {name: np.zeros(self.rows) for name in ENERGIES}
        self.closures = np.zeros((len(OUTPUTS), self.rows), np.int64)
        self.first_count_s = np.full((len(OUTPUTS), self.rows), np.nan)
        self.last_count_s = np.full((len(OUTPUTS), self.rows), np.nan)
        # The demand step function, (times, demands, maxima) per piece in time order: a
        # run's closes as the core's columns (no Python object per close), else one point.
        self._demand_pieces: list[tuple[Any, Any, Any]] = [((0.0,), (0.0,), (0.0,))]
        self.events: list[ScalarEvent] = []  # everything but pulse edges and series, time order
        self.edges: list[PulseEdges] = []
        self.keep_edges = False
        self.coarse_steps: list[StepTooCoarse] = []  # also among the events
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
        """Record one block from the core's own per-sample registration (no second metrology).

        The block's rows are consecutive, so they are addressed as a slice."""
        reg = self._events(events)
        if reg is None:
            raise ValueError("block: no Registration event; expected a core with emit_series")
        n, i0, els = block.n, self.done, self.model.elements
        k0 = (-i0) % self.spr
        starts = np.arange(k0, n, self.spr)
        if k0 or starts.size == 0:
            starts = np.concatenate(([0], starts))
        r0 = i0 // self.spr
        rows = slice(r0, r0 + starts.shape[0])
        dt = block.dt_s
        self.power_ws[:els, rows] += np.add.reduceat(reg.power_w, starts, axis=1) * dt
        volts = np.asarray(block.voltage_v, dtype=np.float64)
        if volts.strides[1] == 0:  # a constant per line over the block (a broadcast view)
            self._constant_voltage(volts, starts, rows, dt)
        else:
            self.voltage_vs[:, rows] += np.add.reduceat(volts, starts, axis=1) * dt
            low = np.minimum.reduceat(volts.min(axis=0), starts)
            np.minimum(self.voltage_min_v[rows], low, out=self.voltage_min_v[rows])
        per_sample = (
            ("delivered", reg.delivered_uj, before.energy_delivered_uj, after.energy_delivered_uj),
            ("received", reg.received_uj, before.energy_received_uj, after.energy_received_uj),
            ("l1", reg.l1_uj, before.energy_l1_uj, after.energy_l1_uj),
            ("l2", reg.l2_uj, before.energy_l2_uj, after.energy_l2_uj),
        )
        for name, series, lo, hi in per_sample:
            # A register's increments are never negative: none gained, all are zero.
            gained = np.add.accumulate(np.add.reduceat(series, starts)) if hi != lo else 0
            self.energy_uj[name][rows] = int(lo) + gained
        self.done += n
        self._demand_pieces.append(((after.time_s,), (after.demand_kw,), (after.demand_max_kw,)))

    def _constant_voltage(
        self, volts: FloatArray, starts: npt.NDArray[np.intp], rows: slice, dt: float
    ) -> None:
        """A row's voltage sum depends on its length only: each length (the first row's,
        the last's, a whole row's) is summed once, by the same reduceat over the same
        values, so the same bits as summing every row; the lowest sample is the lower
        line's voltage."""
        n = volts.shape[1]
        first = int(starts[1]) if starts.shape[0] > 1 else n
        last = n - int(starts[-1])
        sums = np.empty((2, starts.shape[0]))
        for length, at in ((self.spr, slice(None)), (first, slice(0, 1)), (last, slice(-1, None))):
            sums[:, at] = np.add.reduceat(volts[:, :length], [0], axis=1)
        sums *= dt
        self.voltage_vs[:, rows] += sums
        low = float(volts[:, 0].min())
        np.minimum(self.voltage_min_v[rows], low, out=self.voltage_min_v[rows])

    def command(self, events: list[Event], after: Snapshot) -> None:
        self._events(events)
        self._demand_pieces.append(((after.time_s,), (after.demand_kw,), (after.demand_max_kw,)))

    def _events(self, events: Iterable[Event]) -> Registration | None:
        """Record ``events``; returns the block's registration series, if among them."""
        kept, reg = self.events, None
        edges: list[PulseEdges] = []
        for ev in events:
            if isinstance(ev, DemandCloses):
                self._closes(ev)
            elif isinstance(ev, PulseEdges):
                edges.append(ev)
            elif isinstance(ev, Registration):
                reg = ev
            else:
                self._scalar(ev)
                kept.append(ev)
        if edges:
            self._closures(edges)
        return reg

    def _closes(self, ev: DemandCloses) -> None:
        """A run's closes: their points of the demand step function, the peak, the records."""
        self._demand_pieces.append((ev.time_s, ev.demand_kw, ev.demand_max_kw))
        top = int(ev.demand_kw.argmax())  # the first of the largest, as one by one
        if ev.demand_kw.item(top) > self.peak_demand[0]:
            self.peak_demand = (ev.demand_kw.item(top), ev.time_s.item(top))
        self.events.extend(ev.each())

    def _scalar(self, ev: ScalarEvent) -> None:
        if type(ev) is DemandClosed:
            self._demand_pieces.append(((ev.time_s,), (ev.demand_kw,), (ev.demand_max_kw,)))
            if ev.demand_kw > self.peak_demand[0]:
                self.peak_demand = (ev.demand_kw, ev.time_s)
        elif isinstance(ev, PowerLost):
            self._unpowered_since = ev.time_s
        elif isinstance(ev, PowerRestored):
            if self._unpowered_since is not None:
                self.unpowered_spans.append((self._unpowered_since, ev.time_s))
                self._unpowered_since = None
            self._demand_pieces.append(((ev.time_s,), (0.0,), (0.0,)))  # a boot clears demand
        elif isinstance(ev, ErrorRaised):
            self._active |= 1 << ev.code
            self.errors_seen.add(ev.code)
            self.error_points.append((ev.time_s, self._active))
        elif isinstance(ev, ErrorCleared):
            self._active &= ~(1 << ev.code)
            self.error_points.append((ev.time_s, self._active))
        elif isinstance(ev, StepTooCoarse):
            self.coarse_steps.append(ev)

    def _closures(self, found: list[PulseEdges]) -> None:
        """Counts per output and row, and each row's first and last count time, from a
        block's edges (one PulseEdges per output): the outputs' counts together, as the
        (output, row) cells of the tables they fall in."""
        if self.keep_edges:
            self.edges.extend(found)
        # Pulse registers count closures; the counter register counts completed counts,
        # i.e. the coil opening at the end of each count.
        times: list[FloatArray] = []
        offsets, sizes = [], []  # each output's first cell in the flat tables; its counts
        for ev in found:
            t = ev.time_s[~ev.closed if ev.output == "counter" else ev.closed]
            if t.shape[0]:
                times.append(t)
                offsets.append(OUTPUTS.index(ev.output) * self.rows)
                sizes.append(t.shape[0])
        if not times:
            return
        t = times[0] if len(times) == 1 else np.concatenate(times)
        # An edge at time t belongs to the row whose interval (start, end] holds t.
        at = t / (self.spr * self.dt_s)
        at -= 1e-9
        cell = np.ceil(at, out=at).astype(np.int64)
        cell -= 1
        np.maximum(cell, 0, out=cell)
        np.minimum(cell, self.rows - 1, out=cell)
        cell += np.repeat(offsets, sizes)
        # A cell's counts are consecutive (each output's edges come in time order).
        new = np.empty(cell.shape[0], np.bool_)
        new[0] = True
        np.not_equal(cell[1:], cell[:-1], out=new[1:])
        heads = new.nonzero()[0]
        ends = np.append(heads[1:], cell.shape[0])
        first = cell[heads]
        self.closures.reshape(-1)[first] += ends - heads
        first_s = self.first_count_s.reshape(-1)
        first_s[first] = np.fmin(first_s[first], t[heads])
        ends -= 1
        self.last_count_s.reshape(-1)[cell[ends]] = t[ends]

    # ------------------------------------------------------------ results

    def unpowered_s(self, end_s: float) -> float:
        spans = self.spans(end_s)
        return float(sum(b - a for a, b in spans))

    def spans(self, end_s: float) -> list[tuple[float, float]]:
        """The unpowered spans (start, end), an open one closed at ``end_s``."""
        spans = list(self.unpowered_spans)
        if self._unpowered_since is not None:
            spans.append((self._unpowered_since, end_s))
        return spans

    def row_end_s(self) -> FloatArray:
        # k * spr * dt as the cumulative sum of whole rows times dt gave it: the row
        # counts are exact in a float, so one array, scaled in place.
        ends = np.arange(1, self.rows + 1, dtype=np.float64)
        ends *= self.spr
        ends *= self.dt_s
        return np.minimum(ends, self.duration_s, out=ends)

    def columns(self) -> dict[str, npt.NDArray[Any]]:
        """The time series: one array per column, names carry their units.

        A year at one minute is 19 columns of 4 MB: each is made in one array, with few
        temporaries (every page a process writes first costs a fault; so do the pages
        a forked process still shares). Voltage minimum and counts are the recorder's
        own arrays, which a finished run no longer changes."""
        row_end_s = self.row_end_s()
        scratch = np.empty(self.rows)  # each row's length, then its end within float noise
        scratch[:1] = row_end_s[:1]
        np.subtract(row_end_s[1:], row_end_s[:-1], out=scratch[1:])
        mean_w = self.power_ws / scratch
        cols: dict[str, npt.NDArray[Any]] = {"time_s": row_end_s}
        cols["power_l1_w"], cols["power_l2_w"] = mean_w[0], mean_w[1]
        cols["power_w"] = mean_w[0] + mean_w[1]
        mean_v = self.voltage_vs / scratch
        cols["voltage_l1_v"], cols["voltage_l2_v"] = mean_v[0], mean_v[1]
        cols["voltage_min_v"] = self.voltage_min_v
        for name in ENERGIES:
            cols[f"energy_{name}_wh"] = uj_to_wh(self.energy_uj[name])
        ends = np.add(row_end_s, 1e-9, out=scratch)  # what is at a row's end is in it
        t, d, m = (np.concatenate(x) for x in zip(*self._demand_pieces, strict=True))
        at = last_at(t, ends)
        cols["demand_kw"], cols["demand_max_kw"] = d[at], m[at]
        for k, name in enumerate(COUNT_COLUMNS):
            cols[name] = self.closures[k]
        et, masks = (np.array(x) for x in zip(*self.error_points, strict=True))
        codes = highest_error_codes(masks.astype(np.int64))  # per point: a few, not per row
        if codes.shape[0] == 1:
            cols["error_code"] = np.full(self.rows, codes[0])
        else:
            cols["error_code"] = codes[last_at(et, ends)]
        cols["unpowered_s"] = self._unpowered_per_row(row_end_s)
        return cols

    def count_times(self) -> dict[str, tuple[FloatArray, FloatArray]]:
        """Per count column: each row's first and last count time (NaN: none in the row),
        the recorder's own arrays (a finished run no longer changes them)."""
        return {
            name: (self.first_count_s[k], self.last_count_s[k])
            for k, name in enumerate(COUNT_COLUMNS)
        }

    def _unpowered_per_row(self, row_end_s: FloatArray) -> FloatArray:
        """Unpowered seconds in each row: the differences of the cumulative unpowered
        time at the row ends and at 0 (the first row's start)."""
        spans = self.spans(float(row_end_s[-1]))
        if not spans:
            return np.zeros_like(row_end_s)
        xp = np.array([x for span in spans for x in span])
        lengths = np.array([b - a for a, b in spans])
        before = np.concatenate(([0.0], np.cumsum(lengths)[:-1]))
        fp = np.stack([before, before + lengths], axis=1).ravel()
        right = float(lengths.sum())
        cum = np.asarray(np.interp(row_end_s, xp, fp, left=0.0, right=right), dtype=np.float64)
        per_row = np.empty_like(cum)
        per_row[:1] = cum[:1] - np.interp([0.0], xp, fp, left=0.0, right=right)
        np.subtract(cum[1:], cum[:-1], out=per_row[1:])
        return per_row


def last_at(times: FloatArray, ends: FloatArray) -> npt.NDArray[np.intp]:
    """For each of ``ends`` (ascending), the index of the last of ``times`` (ascending,
    the first at or before every end) at or before it: ``searchsorted(times, ends,
    side="right") - 1``, found by searching each time among the ends instead (a year
    has ~10^5 demand points and 5 x 10^5 rows): the points up to each end are counted."""
    first_end = np.searchsorted(ends, times, side="left")  # the first end at or after each
    counts = np.bincount(first_end, minlength=ends.shape[0] + 1)[: ends.shape[0]]
    at = np.cumsum(counts, out=counts)
    at -= 1
    return at
