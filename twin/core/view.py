"""What the meter shows: the snapshot of every register, the outputs, LCD and indicators.

Everything here is a pure function of the meter's state at one instant. Energies
are whole watt-hours (floor of the exact µJ accumulators, which are reported too);
pulse counts are closures since energy zero minus the offset of the last clear;
output states and the load LED follow delivered energy (see ``pulses``); the LCD
screen and the indicators follow the status bits (see ``status``). An unpowered
meter shows nothing: LCD off, outputs open, indicators dark.
"""

from __future__ import annotations

from twin.core import pulses
from twin.core.demand import DemandState
from twin.core.limits import KH_WH
from twin.core.models import MeterConfig, RegistrationMode
from twin.core.readings import Readings
from twin.core.snapshot import Snapshot
from twin.core.status import StatusBit, error_code, indicator_bits, lcd_screen

_NAN = float("nan")
_UJ_PER_WH = pulses.UJ_PER_WH


def power_w(readings: Readings, elements: int) -> float:
    """The meter's total power: L1, plus L2 on a two-element model (NaN when unpowered)."""
    return readings.power_l1_w + (readings.power_l2_w if elements == 2 else 0.0)


def build_snapshot(
    config: MeterConfig,
    *,
    time_us: int,
    uptime_us: int,
    boot_us: int,
    powered: bool,
    bits: int,
    readings: Readings,
    demand: DemandState,
    mode: RegistrationMode,
    energies_uj: tuple[int, int, int, int],
    pulse_offsets: tuple[int, ...],
    power_up_count: int,
) -> Snapshot:
    """The snapshot of a meter in this state.

    ``energies_uj``: delivered, received, L1, L2; ``pulse_offsets``: closures of the
    10, 100 and 1000 Wh outputs and counter counts at the last clear.
    """
    model = config.model
    els = model.elements
    r = readings
    e_del, e_rec, e_l1, e_l2 = energies_uj
    start = model.starting_current_a
    indicators = 0
    outputs = 0
    if powered:
        closed = [pulses.is_closed(e_del, kh) for kh in KH_WH]
        counter_on = pulses.counter_energised(e_del, model.counter_wh_per_count)
        outputs = sum(int(c) << k for k, c in enumerate([*closed, counter_on]))
        lines = [(r.voltage_l1_v, r.current_l1_a, r.power_l1_w, r.pf_abs_l1, r.leading_l1)]
        if els == 2:
            lines.append((r.voltage_l2_v, r.current_l2_a, r.power_l2_w, r.pf_abs_l2, r.leading_l2))
        indicators = indicator_bits(lines, bits, closed[0], model.max_current_a, start)
    booting = bool(bits & (1 << StatusBit.BOOTING))
    c = demand.config
    screen = lcd_screen(powered, booting, (uptime_us - boot_us) / 1e6, config.lcd_screen_s, bits)
    return Snapshot(
        time_s=time_us / 1e6,
        serial_number=config.serial_number,
        model=model.name,
        elements=els,
        powered=powered,
        energy_delivered_uj=e_del,
        energy_received_uj=e_rec,
        energy_l1_uj=e_l1,
        energy_l2_uj=e_l2,
        energy_delivered_wh=e_del // _UJ_PER_WH,
        energy_received_wh=e_rec // _UJ_PER_WH,
        energy_l1_wh=e_l1 // _UJ_PER_WH,
        energy_l2_wh=e_l2 // _UJ_PER_WH,
        energy_delivered_hwh=e_del // (100 * _UJ_PER_WH),
        energy_delivered_kwh=e_del / (1000 * _UJ_PER_WH),
        power_w=power_w(r, els),
        power_l1_w=r.power_l1_w,
        power_l2_w=r.power_l2_w,
        voltage_l1_v=r.voltage_l1_v,
        voltage_l2_v=r.voltage_l2_v,
        voltage_l1_l2_v=r.voltage_l1_l2_v,
        current_l1_a=r.current_l1_a,
        current_l2_a=r.current_l2_a,
        power_factor_l1=r.pf_abs_l1 if r.current_l1_a >= start else _NAN,
        power_factor_l2=r.pf_abs_l2 if els == 2 and r.current_l2_a >= start else _NAN,
        frequency_hz=r.frequency_hz,
        demand_kw=demand.demand_w / 1000.0,
        demand_max_kw=demand.max_w / 1000.0,
        demand_max_at_s=demand.max_at_us // 1_000_000,
        demand_subinterval_elapsed_s=demand.elapsed_us(uptime_us) // 1_000_000,
        demand_valid=int(demand.valid),
        status_bits=bits,
        error_code=int(error_code(bits)),
        lcd_screen=int(screen),
        indicators=indicators,
        output_states=outputs,
        pulses_10wh=pulses.closures(e_del, 10) - pulse_offsets[0],
        pulses_100wh=pulses.closures(e_del, 100) - pulse_offsets[1],
        pulses_1000wh=pulses.closures(e_del, 1000) - pulse_offsets[2],
        counter_counts=pulses.counter_counts(e_del, model.counter_wh_per_count) - pulse_offsets[3],
        uptime_s=uptime_us // 1_000_000,
        power_up_count=power_up_count,
        temperature_c=r.temperature_c,
        registration_mode=mode,
        demand_interval_min=c.interval_min,
        demand_subintervals=c.subintervals,
        demand_method=c.method,
        demand_max_window_h=c.max_window_h,
    )
