"""MeterCore: the Mini Meter's metrology, outputs, demand and display.

One entry point, :meth:`MeterCore.advance`, takes a :class:`SampleBlock` of any
length, so the live twin (a few samples per tick) and batch simulation (a million
per call) share one implementation and get identical registers for the same
samples, however they are split into blocks.

Per sample: the supply decides whether the meter is powered (102 V to power up,
hysteresis and a hold-up time on the way down: see ``supply``). The block is cut
into runs of constant power state. In a powered run the registers gain the run's
energy as the wiring makes each element see it (see ``wiring``, ``registration``),
the pulse outputs, counter and load LED follow delivered energy (see ``pulses``),
demand is fed the run (see ``demand``) and status
bits are computed per sample so error events carry their time (see ``status``). An
unpowered run registers nothing and keeps every register; the next powered sample
boots the meter and counts a power-up; while unpowered the instantaneous readings
are NaN ("not available"). Commands (see ``commands``) apply at the core's current
time.

No clock, IO or global RNG here: time is the block's sample period, integer
microseconds since the core's start.
"""

from __future__ import annotations

import itertools

import numpy as np

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
from twin.core.events import (
    ClearedCounts,
    CountsCleared,
    Event,
    MaxDemandReset,
    PowerLost,
    PowerRestored,
    PulseEdges,
    PulseOutput,
    Registration,
    StepTooCoarse,
)
from twin.core.limits import KH_WH
from twin.core.models import DemandConfig, DemandMethod, MeterConfig, RegistrationMode
from twin.core.readings import UNPOWERED_READINGS
from twin.core.registration import output_edges
from twin.core.samples import BoolArray, FloatArray, IntArray, SampleBlock
from twin.core.shared import Measured, Scratch, SharedMeasurements, measure, measure_run
from twin.core.snapshot import NvState, Snapshot
from twin.core.status import StatusBit, error_events, or_bits
from twin.core.supply import SupplyState
from twin.core.view import build_snapshot

_ERROR_BIT = {
    MeterErrorKind.MEMORY: StatusBit.MEMORY_ERROR,
    MeterErrorKind.CALIBRATION: StatusBit.CALIBRATION_ERROR,
}
_INJECTABLE_MASK = sum(1 << bit for bit in _ERROR_BIT.values())
_OUTPUTS = tuple(PulseOutput)


class MeterCore:
    """One meter. Not thread-safe; the shell serialises advance() and apply()."""

    def __init__(
        self,
        config: MeterConfig | None = None,
        nv: NvState | None = None,
        *,
        start_time_s: float = 0.0,
        emit_edges: bool = True,
        emit_series: bool = False,
        shared: SharedMeasurements | None = None,
    ) -> None:
        self.config = config or MeterConfig()
        self.shared = shared  # the shell may swap it when the meter's inputs change
        self.emit_edges = emit_edges
        self.emit_series = emit_series
        self._curve = ErrorCurve.from_config(self.config.accuracy, self.config.model)
        self._time_us = round(start_time_s * 1e6)
        self._boot_us = round(self.config.boot_s * 1e6)
        self._readings = UNPOWERED_READINGS
        self._coarse_reported: set[PulseOutput] = set()
        self._scratch = Scratch()  # buffers reused from block to block
        self._restore(nv or NvState())

    # ------------------------------------------------------------ state I/O

    def _restore(self, nv: NvState) -> None:
        self._e_del, self._e_rec = nv.energy_delivered_uj, nv.energy_received_uj
        self._e_l1, self._e_l2 = nv.energy_l1_uj, nv.energy_l2_uj
        self._e_l1_rec, self._e_l2_rec = nv.energy_l1_received_uj, nv.energy_l2_received_uj
        self._pulse_offsets = list(nv.pulse_offsets)
        self._counter_offset = nv.counter_offset
        self._power_ups = nv.power_up_count
        self._uptime_us = nv.uptime_us
        self._powered = nv.powered
        self._supply = SupplyState(self.config.supply, powered=nv.powered)
        self._injected = {MeterErrorKind(k) for k in nv.injected_errors}
        self._calibration_pct = nv.calibration_error_pct
        # A meter that has run keeps the settings written to it (block C);
        # a new one takes them from its configuration.
        self._mode = self.config.registration_mode
        demand_config = self.config.demand
        if nv.power_up_count:
            self._mode = RegistrationMode(nv.registration_mode)
            interval, subs, method, window = nv.demand_config
            demand_config = DemandConfig(interval, subs, DemandMethod(method), window)
        self._demand = DemandState.restore(demand_config, nv)
        self._bits = self._injected_bits() | (0 if self._powered else 1 << StatusBit.UNPOWERED)

    def nv_state(self) -> NvState:
        nv = NvState(
            energy_delivered_uj=self._e_del,
            energy_received_uj=self._e_rec,
            energy_l1_uj=self._e_l1,
            energy_l2_uj=self._e_l2,
            energy_l1_received_uj=self._e_l1_rec,
            energy_l2_received_uj=self._e_l2_rec,
            pulse_offsets=(self._pulse_offsets[0], self._pulse_offsets[1], self._pulse_offsets[2]),
            counter_offset=self._counter_offset,
            power_up_count=self._power_ups,
            uptime_us=self._uptime_us,
            powered=self._powered,
            injected_errors=tuple(sorted(k.value for k in self._injected)),
            calibration_error_pct=self._calibration_pct,
            registration_mode=int(self._mode),
        )
        return self._demand.save(nv)

    @property
    def time_s(self) -> float:
        return self._time_us / 1e6

    def _injected_bits(self) -> int:
        return sum(1 << _ERROR_BIT[k] for k in self._injected)

    # ------------------------------------------------------------- advance

    def advance(self, block: SampleBlock) -> list[Event]:
        """Advance over ``block``; returns the events in time order per kind."""
        dt_us = block.dt_us
        measured = self._measure(block)
        supply, p = measured.supply, measured.power_w

        events: list[Event] = []
        edge_parts: dict[PulseOutput, list[tuple[FloatArray, BoolArray]]] = {
            k: [] for k in _OUTPUTS
        }
        # Per-sample registered energy (delivered, received, L1, L2) when asked for.
        series = np.zeros((4, block.n), np.int64) if self.emit_series else None
        time0_us = self._time_us
        change = np.flatnonzero(supply[1:] != supply[:-1]) + 1
        bounds = [0, *change.tolist(), block.n]
        for a, b in itertools.pairwise(bounds):
            if supply[a]:
                self._run_powered(block, measured, a, b, events, edge_parts, series)
            else:
                self._run_unpowered(b - a, dt_us, events)
        if series is not None:
            events.append(
                Registration(
                    time0_s=time0_us / 1e6,
                    dt_s=dt_us / 1e6,
                    power_w=np.where(supply, p, 0.0),
                    delivered_uj=series[0],
                    received_uj=series[1],
                    l1_uj=series[2],
                    l2_uj=series[3],
                )
            )
        for output in _OUTPUTS:
            parts = edge_parts[output]
            if len(parts) == 1:  # one powered run: its arrays as they are
                events.append(PulseEdges(output=output, time_s=parts[0][0], closed=parts[0][1]))
            elif parts:
                events.append(
                    PulseEdges(
                        output=output,
                        time_s=np.concatenate([t for t, _ in parts]),
                        closed=np.concatenate([c for _, c in parts]),
                    )
                )
        return events

    def _measure(self, block: SampleBlock) -> Measured:
        """The block as this meter measures it; shared with the cores whose key matches."""
        key = None
        if self.shared is not None and not self.emit_series:
            supply_state = (self._supply.powered, self._supply.dip_us)
            key = (
                self.config.model,
                self.config.supply,
                self._curve,
                self._calibration_pct,
                self._mode,
                supply_state,
            )
            hit = self.shared.lookup(block, key)
            if hit is not None:
                self._supply.powered, self._supply.dip_us = hit.supply_after
                return hit
        scratch = self._scratch if key is None else None  # shared arrays outlive this block
        measured = measure(
            block, self.config.model, self._supply, self._curve, self._calibration_pct, scratch
        )
        if self.shared is not None and key is not None:
            self.shared.store(block, key, measured)
        return measured

    def _run_unpowered(self, m: int, dt_us: int, events: list[Event]) -> None:
        if self._powered:
            self._powered = False
            events.append(PowerLost(time_s=self._time_us / 1e6))
        self._readings = UNPOWERED_READINGS
        self._set_bits(
            np.array([self._injected_bits() | 1 << StatusBit.UNPOWERED], np.uint32), events, 0
        )
        self._time_us += m * dt_us

    def _run_powered(
        self,
        block: SampleBlock,
        measured: Measured,
        a: int,
        b: int,
        events: list[Event],
        edge_parts: dict[PulseOutput, list[tuple[FloatArray, BoolArray]]],
        series: IntArray | None,
    ) -> None:
        model = self.config.model
        dt_us = block.dt_us
        if not self._powered:
            self._powered = True
            self._power_ups += 1
            self._uptime_us = 0
            self._demand.power_up()
            events.append(PowerRestored(time_s=self._time_us / 1e6, power_up_count=self._power_ups))
        m = b - a
        run = measured.runs.get((a, b))
        if run is None:
            run = measure_run(block, measured, model, self._mode, (a, b), series)
        reg, cum = run.registered, run.cum_uj
        if self.emit_edges and cum[-1] > 0:
            for output, times, closed, crowded in output_edges(
                self._e_del, reg.delivered, cum, self._time_us, dt_us, model.counter_wh_per_count
            ):
                edge_parts[output].append((times, closed))
                if crowded >= 0 and output not in self._coarse_reported:
                    self._coarse_reported.add(output)
                    t = (self._time_us + crowded * dt_us) / 1e6
                    events.append(StepTooCoarse(time_s=t, output=output, dt_s=dt_us / 1e6))

        events.extend(
            self._demand.advance(self._uptime_us, dt_us, reg.delivered, self._time_us, cum)
        )

        # Status bits per sample, then error raised/cleared events at their sample.
        bits = run.bits
        injected = np.uint32(self._injected_bits())
        if self._uptime_us < self._boot_us:
            bits = bits | injected  # a new array: the run's bits are shared, read-only
            n_boot = min(m, -(-(self._boot_us - self._uptime_us) // dt_us))
            bits[:n_boot] |= np.uint32(1 << StatusBit.BOOTING)
        elif injected:
            bits = or_bits(bits, injected)
        self._set_bits(bits, events, dt_us)

        self._e_del += int(cum[-1])
        self._e_rec += reg.received_uj
        self._e_l1 += reg.l1_uj
        self._e_l2 += reg.l2_uj
        self._e_l1_rec += reg.l1_received_uj
        self._e_l2_rec += reg.l2_received_uj
        self._uptime_us += m * dt_us
        self._time_us += m * dt_us
        self._readings = run.readings

    def _set_bits(self, bits: np.ndarray, events: list[Event], dt_us: int) -> None:
        """Record per-sample status bits from now; emit error events where errors change."""
        events.extend(error_events(self._bits, bits, self._time_us, dt_us))
        self._bits = int(bits[-1])

    # ------------------------------------------------------------ commands

    def apply(self, command: Command) -> list[Event]:
        """Apply one command at the core's current time."""
        t = self._time_us / 1e6
        match command:
            case ResetMaxDemand():
                self._demand.reset_max(self._uptime_us)
                return [MaxDemandReset(time_s=t)]
            case NewDemandSubinterval():
                self._demand.close_now(self._uptime_us)
                return []
            case ClearPulseCounts():
                self._pulse_offsets = [pulses.closures(self._e_del, kh) for kh in KH_WH]
                return [CountsCleared(time_s=t, what=ClearedCounts.PULSES)]
            case ClearEnergy():
                self._e_del = self._e_rec = self._e_l1 = self._e_l2 = 0
                self._e_l1_rec = self._e_l2_rec = 0
                self._pulse_offsets = [0, 0, 0]
                self._counter_offset = 0
                return [CountsCleared(time_s=t, what=ClearedCounts.ENERGY)]
            case InjectError(kind=kind) | ClearError(kind=kind):
                if isinstance(command, InjectError):
                    self._injected.add(kind)
                    if kind is MeterErrorKind.CALIBRATION:
                        self._calibration_pct = command.calibration_error_pct
                else:
                    self._injected.discard(kind)
                    if kind is MeterErrorKind.CALIBRATION:
                        self._calibration_pct = 0.0
                events: list[Event] = []
                base = self._bits & ~_INJECTABLE_MASK
                self._set_bits(np.array([base | self._injected_bits()], np.uint32), events, 0)
                return events
            case Reconfigure():
                self._reconfigure(command)
                return []
        raise TypeError(f"unknown command {command!r}")

    def _reconfigure(self, cmd: Reconfigure) -> None:
        c = self._demand.config
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
        mode = self._mode
        if cmd.registration_mode is not None:
            mode = RegistrationMode(cmd.registration_mode)
        if new != c:
            self._demand = self._demand.reconfigured(new, self._uptime_us)
        self._mode = mode

    # ------------------------------------------------------------ snapshot

    def snapshot(self) -> Snapshot:
        return build_snapshot(
            self.config,
            time_us=self._time_us,
            uptime_us=self._uptime_us,
            boot_us=self._boot_us,
            powered=self._powered,
            bits=self._bits,
            readings=self._readings,
            demand=self._demand,
            mode=self._mode,
            energies_uj=(self._e_del, self._e_rec, self._e_l1, self._e_l2),
            pulse_offsets=(*self._pulse_offsets, self._counter_offset),
            power_up_count=self._power_ups,
        )
