"""MeterCore: the Mini Meter's metrology, outputs, demand and display.

One entry point, :meth:`MeterCore.advance`, takes a :class:`SampleBlock` of any
length, so the live twin (a few samples per tick) and batch simulation (a million
per call) share one implementation and get identical registers for the same
samples, however they are split into blocks.

Per sample: the meter is powered while some line is at or above 102 V. The block
is cut into runs of constant power state. In a powered run, real power per element
is P = V·I·cos(phi), zero below the starting current (no creep), scaled by the
accuracy model; energy per sample is rounded to integer microjoules (W x us), and the
registers are exact integer sums of those (Python ints: no overflow, no drift).
Registration follows the mode: sum_then_clamp (L1+L2, only when positive),
per_element_clamp, or bidirectional (delivered and received). Pulse outputs,
counter and load LED are functions of delivered energy (see ``pulses``); demand is
fed per run (see ``demand``); status bits are computed per sample so error events
carry their time. An unpowered run registers nothing and keeps every register;
the next powered sample boots the meter and counts a power-up.

No clock, IO or global RNG here: time is the block's sample period, integer
microseconds since the core's start.
"""

from __future__ import annotations

import itertools

import numpy as np

from twin.core import pulses
from twin.core.accuracy import ErrorCurve
from twin.core.demand import DemandState
from twin.core.models import (
    KH_WH,
    SUPPLY_MIN_V,
    DemandConfig,
    DemandMethod,
    MeterConfig,
    RegistrationMode,
)
from twin.core.snapshot import NvState, Snapshot
from twin.core.status import (
    ERROR_MASK,
    StatusBit,
    active_errors,
    error_code,
    indicator_bits,
    lcd_screen,
    line_status_bits,
)
from twin.core.types import (
    BoolArray,
    ClearEnergy,
    ClearError,
    ClearPulseCounts,
    Command,
    CountsCleared,
    ErrorCleared,
    ErrorRaised,
    Event,
    FloatArray,
    InjectError,
    IntArray,
    MaxDemandReset,
    MeterErrorKind,
    NewDemandSubinterval,
    PowerLost,
    PowerRestored,
    PulseEdges,
    Reconfigure,
    Registration,
    ResetMaxDemand,
    SampleBlock,
)

_NAN = float("nan")
_OUTPUTS = ("10", "100", "1000", "counter")
_ERROR_BIT = {
    MeterErrorKind.MEMORY: StatusBit.MEMORY_ERROR,
    MeterErrorKind.CALIBRATION: StatusBit.CALIBRATION_ERROR,
}


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
    ) -> None:
        self.config = config or MeterConfig()
        self.emit_edges = emit_edges
        self.emit_series = emit_series
        self._curve = ErrorCurve.from_config(self.config.accuracy, self.config.model)
        self._time_us = round(start_time_s * 1e6)
        self._boot_us = round(self.config.boot_s * 1e6)
        self._mode = self.config.registration_mode
        self._demand = DemandState(self.config.demand)
        self._bits = 0
        # Last instantaneous readings: V1, V2, I1, I2, P1, P2, |pf1|, |pf2|, lead1, lead2, f, T
        self._inst: tuple[float, ...] = (0.0,) * 10 + (60.0, 25.0)
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
        self._injected = {MeterErrorKind(k) for k in nv.injected_errors}
        if nv.power_up_count:
            # A meter that has run keeps the settings written to it (block C);
            # a new one takes them from its configuration.
            interval, subs, method, window = nv.demand_config
            self._mode = RegistrationMode(nv.registration_mode)
            self._demand = DemandState(DemandConfig(interval, subs, DemandMethod(method), window))
        d = self._demand
        d.restart(nv.demand_origin_us)
        d.partial_uj, d.closes, d.demand_w = nv.demand_partial_uj, nv.demand_closes, nv.demand_w
        d.recent_w.extend(nv.demand_recent_w[-d.config.subintervals :])
        d.max_w, d.max_at_us = nv.demand_max_w, nv.demand_max_at_us
        d.period_max_w, d.period_max_at_us = nv.demand_period_max_w, nv.demand_period_max_at_us
        d.window_start_us = nv.demand_window_start_us
        self._bits = self._injected_bits() | (0 if self._powered else 1 << StatusBit.UNPOWERED)

    def nv_state(self) -> NvState:
        d = self._demand
        c = d.config
        return NvState(
            energy_delivered_uj=self._e_del,
            energy_received_uj=self._e_rec,
            energy_l1_uj=self._e_l1,
            energy_l2_uj=self._e_l2,
            energy_l1_received_uj=self._e_l1_rec,
            energy_l2_received_uj=self._e_l2_rec,
            pulse_offsets=(self._pulse_offsets[0], self._pulse_offsets[1], self._pulse_offsets[2]),
            counter_offset=self._counter_offset,
            demand_max_w=d.max_w,
            demand_max_at_us=d.max_at_us,
            demand_period_max_w=d.period_max_w,
            demand_period_max_at_us=d.period_max_at_us,
            demand_window_start_us=d.window_start_us,
            demand_origin_us=d.origin_us,
            demand_partial_uj=d.partial_uj,
            demand_recent_w=tuple(d.recent_w),
            demand_closes=d.closes,
            demand_w=d.demand_w,
            power_up_count=self._power_ups,
            uptime_us=self._uptime_us,
            powered=self._powered,
            injected_errors=tuple(sorted(k.value for k in self._injected)),
            registration_mode=int(self._mode),
            demand_config=(c.interval_min, c.subintervals, int(c.method), c.max_window_h),
        )

    @property
    def time_s(self) -> float:
        return self._time_us / 1e6

    def _injected_bits(self) -> int:
        return sum(1 << _ERROR_BIT[k] for k in self._injected)

    # ------------------------------------------------------------- advance

    def advance(self, block: SampleBlock) -> list[Event]:
        """Advance over ``block``; returns the events in time order per kind."""
        dt_us = block.dt_us
        model = self.config.model
        volts, amps, cos_phi = block.voltage_v, block.current_a, block.cos_phi
        if model.elements == 1:
            volts = volts[:1]
        supply = volts.max(axis=0) >= SUPPLY_MIN_V
        # Real power per element; no registration below the starting current.
        p = volts * amps[: model.elements] * cos_phi[: model.elements]
        p = np.where(amps[: model.elements] >= model.starting_current_a, p, 0.0)
        if self._curve is not None:
            p = p * self._curve.ratio(amps[: model.elements], np.abs(cos_phi[: model.elements]))
        e = np.rint(p * dt_us).astype(np.int64)  # µJ per sample and element

        events: list[Event] = []
        edge_parts: dict[str, list[tuple[FloatArray, BoolArray]]] = {k: [] for k in _OUTPUTS}
        # Per-sample registered energy (delivered, received, L1, L2) when asked for.
        series = np.zeros((4, block.n), np.int64) if self.emit_series else None
        time0_us = self._time_us
        change = np.flatnonzero(supply[1:] != supply[:-1]) + 1
        bounds = [0, *change.tolist(), block.n]
        for a, b in itertools.pairwise(bounds):
            if supply[a]:
                self._run_powered(block, p, e, a, b, dt_us, events, edge_parts, series)
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
        for name in _OUTPUTS:
            parts = edge_parts[name]
            if parts:
                events.append(
                    PulseEdges(
                        output=name,
                        time_s=np.concatenate([t for t, _ in parts]),
                        closed=np.concatenate([c for _, c in parts]).astype(bool),
                    )
                )
        return events

    def _run_unpowered(self, m: int, dt_us: int, events: list[Event]) -> None:
        if self._powered:
            self._powered = False
            events.append(PowerLost(time_s=self._time_us / 1e6))
        self._set_bits(
            np.array([self._injected_bits() | 1 << StatusBit.UNPOWERED], np.uint32),
            self._time_us,
            events,
            0,
        )
        self._time_us += m * dt_us

    def _run_powered(
        self,
        block: SampleBlock,
        p: FloatArray,
        e: IntArray,
        a: int,
        b: int,
        dt_us: int,
        events: list[Event],
        edge_parts: dict[str, list[tuple[FloatArray, BoolArray]]],
        series: IntArray | None,
    ) -> None:
        els = self.config.model.elements
        if not self._powered:
            self._powered = True
            self._power_ups += 1
            self._uptime_us = 0
            self._demand.power_up()
            events.append(PowerRestored(time_s=self._time_us / 1e6, power_up_count=self._power_ups))
        m = b - a
        e_el = e[:, a:b]
        e1 = e_el[0]
        e2 = e_el[1] if els == 2 else np.zeros(m, np.int64)
        net = e1 + e2
        if self._mode is RegistrationMode.PER_ELEMENT_CLAMP:
            delivered = np.maximum(e1, 0) + np.maximum(e2, 0)
        else:
            delivered = np.maximum(net, 0)
        cum = np.cumsum(delivered)
        e0 = self._e_del
        if self.emit_edges and cum[-1] > 0:
            for kh, name in zip(KH_WH, _OUTPUTS, strict=False):
                edge_parts[name].append(
                    pulses.edges(
                        e0, delivered, cum, pulses.half_period_uj(kh), self._time_us, dt_us
                    )
                )
            half = pulses.half_period_uj(self.config.model.counter_wh_per_count)
            edge_parts["counter"].append(
                pulses.edges(e0, delivered, cum, half, self._time_us, dt_us)
            )

        events.extend(self._demand.advance(self._uptime_us, dt_us, delivered, self._time_us))

        # Status bits per sample, then error raised/cleared events at their sample.
        volts = block.voltage_v[:, a:b]
        amps = block.current_a[:, a:b]
        pf_abs = np.abs(block.cos_phi[:, a:b])
        bits = line_status_bits(
            els,
            volts,
            amps,
            p[:, a:b],
            pf_abs,
            block.frequency_hz[a:b],
            block.temperature_c[a:b],
            self.config.model.max_current_a,
            self.config.model.starting_current_a,
        )
        bits |= np.uint32(self._injected_bits())
        if self._uptime_us < self._boot_us:
            n_boot = min(m, -(-(self._boot_us - self._uptime_us) // dt_us))
            bits[:n_boot] |= np.uint32(1 << StatusBit.BOOTING)
        self._set_bits(bits, self._time_us, events, dt_us)

        l1 = np.maximum(e1, 0)
        l2 = np.maximum(e2, 0)
        received = np.maximum(-net, 0) if self._mode is RegistrationMode.BIDIRECTIONAL else None
        self._e_del += int(cum[-1])
        self._e_l1 += int(l1.sum())
        self._e_l1_rec += int(np.maximum(-e1, 0).sum())
        if els == 2:
            self._e_l2 += int(l2.sum())
            self._e_l2_rec += int(np.maximum(-e2, 0).sum())
        if received is not None:
            self._e_rec += int(received.sum())
        if series is not None:
            series[0, a:b] = delivered
            series[2, a:b] = l1
            series[3, a:b] = l2
            if received is not None:
                series[1, a:b] = received
        self._uptime_us += m * dt_us
        self._time_us += m * dt_us
        i = b - 1
        v1, v2 = float(block.voltage_v[0, i]), float(block.voltage_v[1, i]) if els == 2 else _NAN
        i1, i2 = float(block.current_a[0, i]), float(block.current_a[1, i]) if els == 2 else _NAN
        p2 = float(p[1, i]) if els == 2 else _NAN
        self._inst = (
            v1,
            v2,
            i1,
            i2,
            float(p[0, i]),
            p2,
            float(pf_abs[0, -1]),
            float(pf_abs[1, -1]) if els == 2 else _NAN,
            float(block.leading[0, i]),
            float(block.leading[1, i]) if els == 2 else 0.0,
            float(block.frequency_hz[i]),
            float(block.temperature_c[i]),
        )

    def _set_bits(self, bits: np.ndarray, time0_us: int, events: list[Event], dt_us: int) -> None:
        """Record per-sample status bits; emit error events where the error set changes."""
        errs = bits & np.uint32(ERROR_MASK)
        prev_err = self._bits & ERROR_MASK
        changed = np.flatnonzero(errs != np.concatenate(([prev_err], errs[:-1])).astype(np.uint32))
        for j in changed.tolist():
            before = active_errors(prev_err if j == 0 else int(errs[j - 1]))
            after = active_errors(int(errs[j]))
            t = (time0_us + j * dt_us) / 1e6
            for code in sorted(after - before):
                events.append(ErrorRaised(time_s=t, code=int(code), name=code.name.lower()))
            for code in sorted(before - after):
                events.append(ErrorCleared(time_s=t, code=int(code), name=code.name.lower()))
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
                return [CountsCleared(time_s=t, what="pulses")]
            case ClearEnergy():
                self._e_del = self._e_rec = self._e_l1 = self._e_l2 = 0
                self._e_l1_rec = self._e_l2_rec = 0
                self._pulse_offsets = [0, 0, 0]
                self._counter_offset = 0
                return [CountsCleared(time_s=t, what="energy")]
            case InjectError(kind=kind) | ClearError(kind=kind):
                if isinstance(command, InjectError):
                    self._injected.add(kind)
                else:
                    self._injected.discard(kind)
                events: list[Event] = []
                base = self._bits & ~(3 << StatusBit.MEMORY_ERROR)
                self._set_bits(
                    np.array([base | self._injected_bits()], np.uint32), self._time_us, events, 0
                )
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
        mode = (
            self._mode if cmd.registration_mode is None else RegistrationMode(cmd.registration_mode)
        )
        if new != c:
            old = self._demand
            self._demand = DemandState(new)
            self._demand.restart(self._uptime_us)
            new_state = self._demand
            new_state.max_w, new_state.max_at_us = old.max_w, old.max_at_us
            new_state.period_max_w = old.period_max_w
            new_state.period_max_at_us = old.period_max_at_us
            new_state.window_start_us = old.window_start_us
        self._mode = mode

    # ------------------------------------------------------------ snapshot

    def snapshot(self) -> Snapshot:
        cfg = self.config
        model = cfg.model
        els = model.elements
        v1, v2, i1, i2, p1, p2, pf1, pf2, lead1, lead2, freq, temp = self._inst
        bits = self._bits
        powered = self._powered
        e_del = self._e_del
        start = model.starting_current_a
        d = self._demand
        indicators = 0
        outputs = 0
        if powered:
            closed = [pulses.is_closed(e_del, kh) for kh in KH_WH]
            counter_on = pulses.counter_energised(e_del, model.counter_wh_per_count)
            outputs = sum(int(c) << k for k, c in enumerate([*closed, counter_on]))
            lines = [(v1, i1, p1, pf1, lead1)] + ([(v2, i2, p2, pf2, lead2)] if els == 2 else [])
            indicators = indicator_bits(
                lines, bits, closed[0], model.max_current_a, model.starting_current_a
            )
        booting = bool(bits & (1 << StatusBit.BOOTING))
        p_total = p1 + (p2 if els == 2 else 0.0)
        c = d.config
        return Snapshot(
            time_s=self._time_us / 1e6,
            serial_number=cfg.serial_number,
            model=model.name,
            elements=els,
            powered=powered,
            energy_delivered_uj=e_del,
            energy_received_uj=self._e_rec,
            energy_l1_uj=self._e_l1,
            energy_l2_uj=self._e_l2,
            energy_delivered_wh=e_del // pulses.UJ_PER_WH,
            energy_received_wh=self._e_rec // pulses.UJ_PER_WH,
            energy_l1_wh=self._e_l1 // pulses.UJ_PER_WH,
            energy_l2_wh=self._e_l2 // pulses.UJ_PER_WH,
            energy_delivered_hwh=e_del // (100 * pulses.UJ_PER_WH),
            energy_delivered_kwh=e_del / (1000 * pulses.UJ_PER_WH),
            power_w=p_total,
            power_l1_w=p1,
            power_l2_w=p2,
            voltage_l1_v=v1,
            voltage_l2_v=v2,
            voltage_l1_l2_v=v1 + v2 if els == 2 else _NAN,
            current_l1_a=i1,
            current_l2_a=i2,
            power_factor_l1=pf1 if i1 >= start else _NAN,
            power_factor_l2=pf2 if els == 2 and i2 >= start else _NAN,
            frequency_hz=freq,
            demand_kw=d.demand_w / 1000.0,
            demand_max_kw=d.max_w / 1000.0,
            demand_max_at_s=d.max_at_us // 1_000_000,
            demand_subinterval_elapsed_s=d.elapsed_us(self._uptime_us) // 1_000_000,
            demand_valid=int(d.valid),
            status_bits=bits,
            error_code=int(error_code(bits)),
            lcd_screen=int(
                lcd_screen(
                    powered,
                    booting,
                    (self._uptime_us - self._boot_us) / 1e6,
                    cfg.lcd_screen_s,
                    bits,
                )
            ),
            indicators=indicators,
            output_states=outputs,
            pulses_10wh=pulses.closures(e_del, 10) - self._pulse_offsets[0],
            pulses_100wh=pulses.closures(e_del, 100) - self._pulse_offsets[1],
            pulses_1000wh=pulses.closures(e_del, 1000) - self._pulse_offsets[2],
            counter_counts=pulses.counter_counts(e_del, model.counter_wh_per_count)
            - self._counter_offset,
            uptime_s=self._uptime_us // 1_000_000,
            power_up_count=self._power_ups,
            temperature_c=temp,
            registration_mode=int(self._mode),
            demand_config=(c.interval_min, c.subintervals, int(c.method), c.max_window_h),
        )
