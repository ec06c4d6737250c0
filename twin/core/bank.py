"""MeterBank: the accumulators of many meters as arrays, one row per meter.

Theory of operation
-------------------
What a meter measures from a block (supply state, power, registration, status bits
0-9, readings: see ``shared``) is the same for every meter with the same inputs and
measurement settings; what differs between such meters is only what they have
accumulated: energies, pulse outputs and their offsets, demand, uptime, power-ups,
status bits and injected errors. A bank keeps those per row, in numpy arrays where
they are numbers, so that ``bank_step.advance_rows`` moves any set of rows over one
block in one call: rows are partitioned by their measurement key, each partition is
measured once, and its increments are added to all its rows at once. Only rows where
something happens within the block (a pulse edge, a demand sub-interval close, a
power transition, booting, an error change) take per-row steps, and those are the
same functions a lone meter uses (see ``bank_step``).

A lone :class:`~twin.core.meter.MeterCore` is a bank of one row, so there is one
accumulation implementation: advancing rows together or one at a time gives the
same events and registers (a differential test checks it). Commands, snapshots and
the non-volatile state are per row.

Energies are exact integers: int64 while they fit, Python integers (object arrays)
once a register nears 2**62 µJ. Demand's open sub-interval energy is added to
``pending_uj`` while no close or window boundary is due, and handed to the row's
:class:`~twin.core.demand.DemandState` before anything else reads it.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.core import pulses
from twin.core.accuracy import ErrorCurve
from twin.core.commands import (
    ClearEnergy,
    ClearError,
    ClearPulseCounts,
    Command,
    InjectError,
    MeterErrorKind,
    NewDemandSubinterval,
    Reconfigure,
    ResetMaxDemand,
)
from twin.core.demand import DemandState
from twin.core.events import ClearedCounts, CountsCleared, Event, MaxDemandReset, PulseOutput
from twin.core.limits import KH_WH
from twin.core.models import DemandConfig, DemandMethod, MeterConfig, RegistrationMode
from twin.core.readings import UNPOWERED_READINGS, Readings
from twin.core.shared import Scratch, SharedMeasurements
from twin.core.snapshot import NvState, Snapshot
from twin.core.status import StatusBit, error_events
from twin.core.view import build_snapshot, power_w

ERROR_BIT = {
    MeterErrorKind.MEMORY: StatusBit.MEMORY_ERROR,
    MeterErrorKind.CALIBRATION: StatusBit.CALIBRATION_ERROR,
}
INJECTABLE_MASK = sum(1 << bit for bit in ERROR_BIT.values())
UNPOWERED_BIT = 1 << StatusBit.UNPOWERED
# Energy registers of a row: delivered, received, L1, L2, L1 received, L2 received.
E_DEL, E_REC, E_L1, E_L2, E_L1_REC, E_L2_REC = range(6)
I64 = npt.NDArray[np.int64]
RowEvents = dict[int, list[Event]]
INT64_ROOM = 2**62  # past this an energy register goes to Python integers
_FIRST_CAPACITY = 4


def injected_kinds(mask: int) -> set[MeterErrorKind]:
    return {kind for kind, bit in ERROR_BIT.items() if mask & (1 << bit)}


class MeterBank:
    """Rows of meters; each row one meter's accumulators. Not thread-safe."""

    def __init__(self, *, emit_edges: bool = True, emit_series: bool = False) -> None:
        self.emit_edges = emit_edges
        self.emit_series = emit_series
        self.size = 0
        cap = _FIRST_CAPACITY
        self.energy_uj: npt.NDArray[Any] = np.zeros((6, cap), np.int64)
        self._energy_bound = 0  # >= every |energy| (see make_room)
        self.pulse_offsets = np.zeros((4, cap), np.int64)  # 10, 100, 1000 Wh, counter
        self.time_us: I64 = np.zeros(cap, np.int64)
        self.uptime_us: I64 = np.zeros(cap, np.int64)
        self.boot_us: I64 = np.zeros(cap, np.int64)
        self.power_ups: I64 = np.zeros(cap, np.int64)
        self.bits: I64 = np.zeros(cap, np.int64)  # status bits now
        self.injected_bits: I64 = np.zeros(cap, np.int64)
        self.powered = np.zeros(cap, np.bool_)
        self.supply_powered = np.zeros(cap, np.bool_)  # the supply's carried state
        self.dip_us: I64 = np.zeros(cap, np.int64)
        self.pending_uj: I64 = np.zeros(cap, np.int64)  # demand energy not yet handed over
        self.due_us: I64 = np.zeros(cap, np.int64)  # uptime at which demand must run
        self.readings: npt.NDArray[np.object_] = np.empty(cap, object)
        self.config: list[MeterConfig] = []
        self.curve: list[ErrorCurve | None] = []
        self.calibration_pct: list[float] = []
        self.mode: list[RegistrationMode] = []
        self.demand: list[DemandState] = []
        self.coarse_reported: list[set[PulseOutput]] = []
        self.shared: list[SharedMeasurements | None] = []
        self.measure_key: list[Hashable] = []  # what the row's measurement depends on
        self.key_id: I64 = np.zeros(cap, np.int64)  # measure_key as a small integer
        self._key_ids: dict[Hashable, int] = {}
        # Buffers for a partition measured without sharing, reused from call to call.
        self.scratch = Scratch()

    # ------------------------------------------------------------ rows

    def add(
        self,
        config: MeterConfig,
        nv: NvState | None = None,
        *,
        start_time_s: float = 0.0,
        shared: SharedMeasurements | None = None,
    ) -> int:
        """A new row for a meter in state ``nv`` (a new meter when None); its index."""
        row = self.size
        if row == self.time_us.shape[0]:
            self._grow()
        self.size += 1
        self.config.append(config)
        self.curve.append(ErrorCurve.from_config(config.accuracy, config.model))
        self.calibration_pct.append(0.0)
        self.mode.append(config.registration_mode)
        self.demand.append(DemandState(config.demand))
        self.coarse_reported.append(set())
        self.shared.append(shared)
        self.measure_key.append(None)
        self.time_us[row] = round(start_time_s * 1e6)
        self.boot_us[row] = round(config.boot_s * 1e6)
        self.restore(row, nv or NvState())
        return row

    def _grow(self) -> None:
        for name in (
            "time_us", "uptime_us", "boot_us", "power_ups", "bits", "injected_bits",
            "powered", "supply_powered", "dip_us", "pending_uj", "due_us", "readings", "key_id",
        ):  # fmt: skip
            old = getattr(self, name)
            new = np.zeros(2 * old.shape[0], old.dtype)
            new[: old.shape[0]] = old
            setattr(self, name, new)
        for name in ("energy_uj", "pulse_offsets"):
            old = getattr(self, name)
            new = np.zeros((old.shape[0], 2 * old.shape[1]), old.dtype)
            new[:, : old.shape[1]] = old
            setattr(self, name, new)

    def restore(self, row: int, nv: NvState) -> None:
        config = self.config[row]
        energies = [
            nv.energy_delivered_uj,
            nv.energy_received_uj,
            nv.energy_l1_uj,
            nv.energy_l2_uj,
            nv.energy_l1_received_uj,
            nv.energy_l2_received_uj,
        ]
        self.make_room(energies)
        self.energy_uj[:, row] = energies
        self.pulse_offsets[:, row] = (*nv.pulse_offsets, nv.counter_offset)
        self.power_ups[row] = nv.power_up_count
        self.uptime_us[row] = nv.uptime_us
        self.powered[row] = self.supply_powered[row] = nv.powered
        self.dip_us[row] = 0
        injected = sum(1 << ERROR_BIT[MeterErrorKind(k)] for k in nv.injected_errors)
        self.injected_bits[row] = injected
        self.calibration_pct[row] = nv.calibration_error_pct
        # A meter that has run keeps the settings written to it (block C);
        # a new one takes them from its configuration.
        mode = config.registration_mode
        demand_config = config.demand
        if nv.power_up_count:
            mode = RegistrationMode(nv.registration_mode)
            interval, subs, method, window = nv.demand_config
            demand_config = DemandConfig(interval, subs, DemandMethod(method), window)
        self.mode[row] = mode
        self.set_demand(row, DemandState.restore(demand_config, nv))
        self.bits[row] = injected | (0 if nv.powered else UNPOWERED_BIT)
        self.readings[row] = UNPOWERED_READINGS
        self.rekey(row)

    def rekey(self, row: int) -> None:
        """Recompute what the row's measurement depends on (after its settings changed)."""
        config = self.config[row]
        key = (
            config.model,
            config.supply,
            self.curve[row],
            self.calibration_pct[row],
            self.mode[row],
        )
        self.measure_key[row] = key
        self.key_id[row] = self._key_ids.setdefault(key, len(self._key_ids))

    def demand_of(self, row: int) -> DemandState:
        """The row's demand state, up to date (its pending energy handed over)."""
        state = self.demand[row]
        pending = int(self.pending_uj[row])
        if pending:
            state.partial_uj += pending
            self.pending_uj[row] = 0
        return state

    def set_demand(self, row: int, state: DemandState) -> None:
        self.demand[row] = state
        self.pending_uj[row] = 0
        self.redue(row)

    def redue(self, row: int) -> None:
        self.due_us[row] = self.demand[row].due_us(int(self.uptime_us[row]))

    def make_room(self, increments: list[int]) -> None:
        """Energies go to Python integers before an increment could overflow int64."""
        if self.energy_uj.dtype != np.int64:
            return
        # An upper bound of every |register| so far, so the usual check is one comparison.
        self._energy_bound += max(map(abs, increments))
        if self._energy_bound >= INT64_ROOM:
            used = self.energy_uj[:, : self.size]
            self._energy_bound = int(np.abs(used).max(initial=0)) + max(map(abs, increments))
            if self._energy_bound >= INT64_ROOM:
                self.energy_uj = self.energy_uj.astype(object)

    # ------------------------------------------------------------ commands

    def apply(self, row: int, command: Command) -> list[Event]:
        """Apply one command to ``row`` at its current time."""
        t = int(self.time_us[row]) / 1e6
        uptime = int(self.uptime_us[row])
        match command:
            case ResetMaxDemand():
                self.demand_of(row).reset_max(uptime)
                self.redue(row)
                return [MaxDemandReset(time_s=t)]
            case NewDemandSubinterval():
                self.demand_of(row).close_now(uptime)
                self.redue(row)
                return []
            case ClearPulseCounts():
                e_del = int(self.energy_uj[E_DEL, row])
                self.pulse_offsets[:3, row] = [pulses.closures(e_del, kh) for kh in KH_WH]
                return [CountsCleared(time_s=t, what=ClearedCounts.PULSES)]
            case ClearEnergy():
                self.energy_uj[:, row] = 0
                self.pulse_offsets[:, row] = 0
                return [CountsCleared(time_s=t, what=ClearedCounts.ENERGY)]
            case InjectError(kind=kind) | ClearError(kind=kind):
                bit = 1 << ERROR_BIT[kind]
                injected = int(self.injected_bits[row])
                if isinstance(command, InjectError):
                    injected |= bit
                    if kind is MeterErrorKind.CALIBRATION:
                        self.calibration_pct[row] = command.calibration_error_pct
                else:
                    injected &= ~bit
                    if kind is MeterErrorKind.CALIBRATION:
                        self.calibration_pct[row] = 0.0
                self.injected_bits[row] = injected
                self.rekey(row)
                old = int(self.bits[row])
                new = (old & ~INJECTABLE_MASK) | injected
                self.bits[row] = new
                now_us = int(self.time_us[row])
                return list(error_events(old, np.array([new], np.uint32), now_us, 0))
            case Reconfigure():
                self._reconfigure(row, command)
                return []
        raise TypeError(f"unknown command {command!r}")

    def _reconfigure(self, row: int, cmd: Reconfigure) -> None:
        state = self.demand_of(row)
        c = state.config
        new = DemandConfig(
            interval_min=c.interval_min
            if cmd.demand_interval_min is None
            else cmd.demand_interval_min,
            subintervals=c.subintervals
            if cmd.demand_subintervals is None
            else cmd.demand_subintervals,
            method=c.method if cmd.demand_method is None else DemandMethod(cmd.demand_method),
            max_window_h=c.max_window_h
            if cmd.demand_max_window_h is None
            else cmd.demand_max_window_h,
        )
        if new != c:
            self.set_demand(row, state.reconfigured(new, int(self.uptime_us[row])))
        if cmd.registration_mode is not None:
            self.mode[row] = RegistrationMode(cmd.registration_mode)
            self.rekey(row)

    # ------------------------------------------------------------ views

    def nv_state(self, row: int) -> NvState:
        return self.nv_states(np.array([row], np.int64))[0]

    def nv_states(self, rows: I64) -> list[NvState]:
        """The non-volatile state of each of ``rows`` (a checkpoint of many at once)."""
        energies = self.energy_uj[:, rows].T.tolist()  # Python ints, int64 or object alike
        offsets = self.pulse_offsets[:, rows].T.tolist()
        columns = zip(
            rows.tolist(),
            energies,
            offsets,
            self.power_ups[rows].tolist(),
            self.uptime_us[rows].tolist(),
            self.powered[rows].tolist(),
            self.injected_bits[rows].tolist(),
            strict=True,
        )
        return [
            NvState(
                energy_delivered_uj=e[E_DEL],
                energy_received_uj=e[E_REC],
                energy_l1_uj=e[E_L1],
                energy_l2_uj=e[E_L2],
                energy_l1_received_uj=e[E_L1_REC],
                energy_l2_received_uj=e[E_L2_REC],
                pulse_offsets=(o[0], o[1], o[2]),
                counter_offset=o[3],
                power_up_count=ups,
                uptime_us=uptime,
                powered=powered,
                injected_errors=tuple(sorted(k.value for k in injected_kinds(injected))),
                calibration_error_pct=self.calibration_pct[row],
                registration_mode=int(self.mode[row]),
                **self.demand_of(row).nv_fields(),
            )
            for row, e, o, ups, uptime, powered, injected in columns
        ]

    def totals(self, rows: I64) -> tuple[int, int, float]:
        """(unpowered meters, delivered Wh, power W) over ``rows``: what a fleet's status
        line sums, without a snapshot per meter (each meter's Wh floored, as shown)."""
        powered = self.powered[rows]
        wh = self.energy_uj[E_DEL, rows] // pulses.UJ_PER_WH
        on = rows[powered]
        # Rows measured together share one Readings: each distinct one is summed once.
        readings = self.readings[on]
        ids = np.fromiter(map(id, readings), np.int64, on.shape[0])
        _, first, counts = np.unique(ids, return_index=True, return_counts=True)
        power = sum(
            n * power_w(readings[i], self.config[row].model.elements)
            for i, row, n in zip(first.tolist(), on[first].tolist(), counts.tolist(), strict=True)
        )
        return int((~powered).sum()), int(wh.sum()), float(power)

    def snapshot(self, row: int) -> Snapshot:
        e = self.energy_uj[:4, row].tolist()  # Python ints, int64 or object rows alike
        readings: Readings = self.readings[row]
        return build_snapshot(
            self.config[row],
            time_us=self.time_us.item(row),
            uptime_us=self.uptime_us.item(row),
            boot_us=self.boot_us.item(row),
            powered=self.powered.item(row),
            bits=self.bits.item(row),
            readings=readings,
            demand=self.demand[row],
            mode=self.mode[row],
            energies_uj=(e[0], e[1], e[2], e[3]),
            pulse_offsets=tuple(self.pulse_offsets[:, row].tolist()),
            power_up_count=self.power_ups.item(row),
        )
