"""Advancing rows of a :class:`~twin.core.bank.MeterBank` over one block.

Theory of operation
-------------------
The rows are partitioned by what their measurement depends on (model, supply
settings, accuracy curve, calibration error, registration mode, and the supply's
carried state); each partition's block is measured once (``shared``: supply, power,
registration, status bits 0-9 and readings per powered run) and cut into runs of
constant power state, the same runs for all its rows. Per run:

- unpowered: rows that were powered lose power (an event each); bits become
  unpowered plus injected; time moves on.
- powered: rows that were off power up (count, uptime 0, demand restarts; an event
  each). Then, per row only where the row's own state makes a difference:
  pulse edges where the run's energy carries the row's delivered register across a
  multiple of an output's half period (a vectorised test first); demand where a
  close or the maximum's window boundary falls inside the run (else the run's
  energy is added to every row's pending energy at once); status bits and error
  events once per distinct (bits before, injected, boot samples, time). Energies,
  uptime and time are then added to all the rows at once.

A lone meter (a bank of one) takes the same steps with its values as Python
scalars (a slice, not an index array, where a column is addressed): per block a
day long, that fixed cost is what is left beside the per-sample passes.

Per row the events keep a lone meter's order: per run power, coarse-step warnings,
demand closes, error changes; then the registration series (when asked for); then
one :class:`~twin.core.events.PulseEdges` per output that has edges in the block.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twin.core.bank import E_DEL, I64, UNPOWERED_BIT, MeterBank, RowEvents
from twin.core.events import (
    PowerLost,
    PowerRestored,
    PulseEdges,
    Registration,
    StepTooCoarse,
)
from twin.core.readings import UNPOWERED_READINGS, Readings
from twin.core.registration import OUTPUTS, output_edges, output_searched_halves
from twin.core.samples import BoolArray, FloatArray, IntArray, SampleBlock
from twin.core.shared import Measured, PoweredRun, measure, measure_run
from twin.core.status import StatusBit, error_events
from twin.core.supply import SupplyState

_BOOTING = np.uint32(1 << StatusBit.BOOTING)
# Per row, per output of OUTPUTS (in order): its edges (times, closed) per run.
EdgeParts = dict[int, list[list[tuple[FloatArray, BoolArray]]]]
BitGroups = list[tuple[I64, tuple[int, ...]]]


def advance_rows(bank: MeterBank, rows: I64, block: SampleBlock) -> RowEvents:
    """Advance ``rows`` (distinct) over ``block``; the events of each row that has any."""
    out: RowEvents = {}
    edges: EdgeParts = {}
    for part in _partitions(bank, rows):
        _advance_part(bank, part, block, out, edges)
    for row, parts in edges.items():
        events = out.setdefault(row, [])
        for output, found in zip(OUTPUTS, parts, strict=True):
            if found:
                times, closed = (
                    found[0]
                    if len(found) == 1
                    else (
                        np.concatenate([t for t, _ in found]),
                        np.concatenate([c for _, c in found]),
                    )
                )
                events.append(PulseEdges(output=output, time_s=times, closed=closed))
    return out


def _partitions(bank: MeterBank, rows: I64) -> list[I64]:
    """``rows`` split by measurement key and supply state (usually one part)."""
    if rows.shape[0] <= 1:
        return [rows]
    cols = (bank.key_id[rows], bank.supply_powered[rows].astype(np.int64), bank.dip_us[rows])
    if all(bool((c == c[0]).all()) for c in cols):
        return [rows]
    _, inverse = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    cuts = np.flatnonzero(np.diff(inverse[order])) + 1
    return [rows[idx] for idx in np.split(order, cuts)]


class _Part(NamedTuple):
    """Rows advanced together; where they are in the bank's columns (one row as a slice,
    which numpy reads and writes without fancy indexing); the row of a part of one."""

    rows: I64
    at: I64 | slice
    lone: int  # -1 for several rows


def _advance_part(
    bank: MeterBank, rows: I64, block: SampleBlock, out: RowEvents, edges: EdgeParts
) -> None:
    dt_us = block.dt_us
    lone = rows.item(0) if rows.shape[0] == 1 else -1
    part = _Part(rows, slice(lone, lone + 1) if lone >= 0 else rows, lone)
    # A powered run's registration fills its samples' series (see measure_run).
    series = np.empty((4, block.n), np.int64) if bank.emit_series else None
    measured = _measure(bank, part, block, series)
    supply = measured.supply
    time0 = bank.time_us[rows].tolist() if series is not None else []
    for a, b, powered in measured.spans:
        if powered:
            _powered_run(bank, part, block, dt_us, measured, (a, b), out, edges, series)
        else:
            _unpowered_run(bank, part, b - a, dt_us, out)
            if series is not None:
                series[:, a:b] = 0
    if series is not None:  # (the power is the core's own: see measure)
        p = measured.power_w
        power = p if supply is None else np.where(supply, p, 0.0)
        for row, t0 in zip(rows.tolist(), time0, strict=True):
            out.setdefault(row, []).append(
                Registration(
                    time0_s=t0 / 1e6,
                    dt_s=dt_us / 1e6,
                    power_w=power,
                    delivered_uj=series[0],
                    received_uj=series[1],
                    l1_uj=series[2],
                    l2_uj=series[3],
                )
            )


def _measure(bank: MeterBank, part: _Part, block: SampleBlock, series: IntArray | None) -> Measured:
    """The block as the partition's meters measure it; shared by key, unless in ``series``."""
    r0 = part.rows.item(0)
    config = bank.config[r0]
    shared = None if bank.emit_series else bank.shared[r0]
    state = (bank.supply_powered.item(r0), bank.dip_us.item(r0))
    key = (bank.measure_key[r0], state)
    measured = None if shared is None else shared.lookup(block, key)
    if measured is None:
        supply = SupplyState(config.supply, powered=state[0], dip_us=state[1])
        scratch = bank.scratch if shared is None else None  # shared arrays outlive the call
        curve, pct = bank.curve[r0], bank.calibration_pct[r0]
        measured = measure(block, config.model, supply, curve, pct, scratch, series=series)
        if shared is not None:
            shared.store(block, key, measured)
    at = part.at if part.lone < 0 else part.lone  # (a scalar store costs less than a slice's)
    bank.supply_powered[at], bank.dip_us[at] = measured.supply_after
    return measured


def _one(readings: Readings) -> np.ndarray:
    holder = np.empty(1, object)
    holder[0] = readings  # an object array of one, so assignment broadcasts the tuple whole
    return holder


_UNPOWERED = _one(UNPOWERED_READINGS)


def _unpowered_run(bank: MeterBank, part: _Part, m: int, dt_us: int, out: RowEvents) -> None:
    rows, at = part.rows, part.at
    for row in rows[bank.powered[at]].tolist():
        out.setdefault(row, []).append(PowerLost(time_s=bank.time_us.item(row) / 1e6))
    bank.powered[at] = False
    bank.readings[at] = _UNPOWERED
    old = bank.bits[at]
    new = bank.injected_bits[at] | UNPOWERED_BIT
    moved = old != new
    if moved.any():
        changes = zip(rows[moved].tolist(), old[moved].tolist(), new[moved].tolist(), strict=True)
        for row, o, n in changes:
            found = error_events(o, np.array([n], np.uint32), bank.time_us.item(row), 0)
            if found:
                out.setdefault(row, []).extend(found)
        bank.bits[at] = new
    bank.time_us[at] += m * dt_us


def _powered_run(
    bank: MeterBank,
    part: _Part,
    block: SampleBlock,
    dt_us: int,
    measured: Measured,
    span: tuple[int, int],
    out: RowEvents,
    edges: EdgeParts,
    series: IntArray | None,
) -> None:
    rows, at, lone = part
    r0 = rows.item(0)
    model = bank.config[r0].model
    # The rows that were off (a lone meter's state read as one Python bool).
    off = rows[~bank.powered[at]] if lone < 0 else rows[:0] if bank.powered.item(lone) else rows
    if off.shape[0]:
        bank.powered[off] = True
        bank.power_ups[off] += 1
        bank.uptime_us[off] = 0
        for row in off.tolist():
            bank.demand_of(row).power_up()
            bank.redue(row)
            out.setdefault(row, []).append(
                PowerRestored(
                    time_s=bank.time_us.item(row) / 1e6, power_up_count=bank.power_ups.item(row)
                )
            )
    run = measured.runs.get(span)
    if run is None:
        run = measure_run(block, measured, model, bank.mode[r0], span, series)
    reg = run.registered
    total = int(run.cum_uj[-1])
    increments = [
        total,
        reg.received_uj,
        reg.l1_uj,
        reg.l2_uj,
        reg.l1_received_uj,
        reg.l2_received_uj,
    ]
    bank.make_room(increments)
    if bank.emit_edges and total > 0:
        _edges(bank, part, run, total, dt_us, model.counter_wh_per_count, out, edges)
    m = span[1] - span[0]
    run_us = m * dt_us
    _demand(bank, part, run, total, run_us, dt_us, out)
    _bits(bank, part, run, m, dt_us, out)
    if lone >= 0:  # a few scalar additions (most increments are zero) beat an array's
        energy = bank.energy_uj
        for register, increment in enumerate(increments):
            if increment:
                energy[register, lone] += increment
        bank.uptime_us[lone] += run_us
        bank.time_us[lone] += run_us
        bank.readings[lone] = run.readings  # one element: the tuple itself is stored
        return
    bank.energy_uj[:, at] += np.array(increments, bank.energy_uj.dtype)[:, None]
    bank.uptime_us[at] += run_us
    bank.time_us[at] += run_us
    bank.readings[at] = _one(run.readings)


def _edges(
    bank: MeterBank,
    part: _Part,
    run: PoweredRun,
    total: int,
    dt_us: int,
    counter_wh: int,
    out: RowEvents,
    edges: EdgeParts,
) -> None:
    """Edges of the rows whose delivered register crosses a half period in the run."""
    # A multiple of any output's half period is one of a searched half period's.
    searched = output_searched_halves(counter_wh)
    delivered, cum = run.registered.delivered, run.cum_uj
    rows, lone = part.rows, part.lone
    if lone >= 0:  # a lone meter: its register as a Python int
        e_del = bank.energy_uj.item(E_DEL, lone)
        end = e_del + total
        for half in searched:  # (a loop: a generator costs more than the one test)
            if end // half != e_del // half:
                t = bank.time_us.item(lone)
                found = output_edges(e_del, delivered, cum, t, dt_us, counter_wh)
                _keep_edges(bank, lone, t, found, dt_us, out, edges)
                return
        return
    e0 = bank.energy_uj[E_DEL, rows]
    by_half = np.array(searched, e0.dtype)[:, None]
    crossed = ((e0 + total) // by_half != e0 // by_half).any(axis=0)
    if not crossed.any():
        return
    times0 = bank.time_us[rows[crossed]].tolist()
    # Meters that started together cross together: rows in the same state share the work.
    memo: dict[tuple[int, int], list[tuple[FloatArray, BoolArray, int]]] = {}
    for row, e, t in zip(rows[crossed].tolist(), e0[crossed].tolist(), times0, strict=True):
        same = memo.get((e, t))
        if same is None:
            same = memo[e, t] = output_edges(int(e), delivered, cum, t, dt_us, counter_wh)
        _keep_edges(bank, row, t, same, dt_us, out, edges)


def _keep_edges(
    bank: MeterBank,
    row: int,
    time0_us: int,
    found: list[tuple[FloatArray, BoolArray, int]],
    dt_us: int,
    out: RowEvents,
    edges: EdgeParts,
) -> None:
    """Keep a run's edges of ``row`` (per output of OUTPUTS) for the block's events."""
    parts = edges.get(row)
    if parts is None:
        parts = edges[row] = [[] for _ in OUTPUTS]
    for output, kept, (times, closed, crowded) in zip(OUTPUTS, parts, found, strict=True):
        if times.shape[0]:
            kept.append((times, closed))
        if crowded >= 0 and output not in bank.coarse_reported[row]:
            bank.coarse_reported[row].add(output)
            at_s = (time0_us + crowded * dt_us) / 1e6
            out.setdefault(row, []).append(
                StepTooCoarse(time_s=at_s, output=output, dt_s=dt_us / 1e6)
            )


def _demand(
    bank: MeterBank,
    part: _Part,
    run: PoweredRun,
    total: int,
    run_us: int,
    dt_us: int,
    out: RowEvents,
) -> None:
    """Add the run to demand: at once where nothing is due, else per row."""
    rows, lone = part.rows, part.lone
    if lone >= 0:  # a lone meter: its values as Python ints
        up0_us = bank.uptime_us.item(lone)
        if up0_us + run_us < bank.due_us.item(lone):
            bank.pending_uj[lone] += total
            return
        due_rows, due_up0 = [lone], [up0_us]
    else:
        up0 = bank.uptime_us[rows]
        quiet = up0 + run_us < bank.due_us[rows]
        if quiet.all():
            bank.pending_uj[rows] += total
            return
        bank.pending_uj[rows[quiet]] += total
        due = ~quiet
        due_rows, due_up0 = rows[due].tolist(), up0[due].tolist()
    for row, u in zip(due_rows, due_up0, strict=True):
        state = bank.demand_of(row)
        t = bank.time_us.item(row)
        found = state.advance(u, dt_us, run.registered.delivered, t, run.cum_uj)
        if found:
            out.setdefault(row, []).extend(found)
        bank.due_us[row] = state.due_us(u + run_us)


def _bits(
    bank: MeterBank, part: _Part, run: PoweredRun, m: int, dt_us: int, out: RowEvents
) -> None:
    """Status bits per sample (run's, injected, booting), error events where they change."""
    lone = part.lone
    if lone < 0:
        for members, key in _bit_groups(bank, part.rows, m, dt_us):
            _bits_of(bank, members, members, key, run, dt_us, out)
        return
    # A lone meter is one group: its values as Python ints.
    up0_us, boot_us = bank.uptime_us.item(lone), bank.boot_us.item(lone)
    booting = min(m, -((up0_us - boot_us) // dt_us)) if up0_us < boot_us else 0
    key = (bank.bits.item(lone), bank.injected_bits.item(lone), booting, bank.time_us.item(lone))
    _bits_of(bank, part.rows, lone, key, run, dt_us, out)


def _bits_of(
    bank: MeterBank,
    members: I64,
    where: I64 | int,
    key: tuple[int, ...],
    run: PoweredRun,
    dt_us: int,
    out: RowEvents,
) -> None:
    """Bits of ``members`` (at ``where``) sharing (bits before, injected, boot, time)."""
    old, injected, booting, time_us = key
    bits = run.bits
    if booting:
        bits = bits | np.uint32(injected)  # a new array: the run's bits are shared
        bits[:booting] |= _BOOTING
    elif injected:  # a broadcast constant stays one: no array per sample
        v = np.uint32(injected)
        bits = np.broadcast_to(bits[:1] | v, bits.shape) if bits.strides[0] == 0 else bits | v
    found = error_events(old, bits, time_us, dt_us)
    if found:
        for row in members.tolist():
            out.setdefault(row, []).extend(found)
    bank.bits[where] = int(bits[-1])


def _bit_groups(bank: MeterBank, rows: I64, m: int, dt_us: int) -> BitGroups:
    """``rows`` by (bits before, injected, boot samples, time): one group when all agree."""
    up0 = bank.uptime_us[rows]
    boot = bank.boot_us[rows]
    n_boot = np.where(up0 < boot, np.minimum(m, -((up0 - boot) // dt_us)), 0)
    cols = (bank.bits[rows], bank.injected_bits[rows], n_boot, bank.time_us[rows])
    if all(bool((c == c[0]).all()) for c in cols):
        return [(rows, tuple(int(c[0]) for c in cols))]
    keys, inverse = np.unique(np.stack(cols, axis=1), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [(rows[inverse == i], tuple(int(x) for x in k)) for i, k in enumerate(keys)]
