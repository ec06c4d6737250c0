"""Frozen views of the meter: the register snapshot and the non-volatile state.

:class:`Snapshot` field names are the register names of REGISTER_MAP.md block A,
so the register map, MQTT payloads and reports read them by name. Energies are
whole watt-hours (floor of the exact µJ accumulators, which are kept too).
:class:`NvState` is what the store persists and what a restart restores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from twin.core.models import DemandMethod, RegistrationMode


@dataclass(frozen=True, slots=True)
class NvState:
    """Non-volatile registers: survive power loss and process restarts."""

    energy_delivered_uj: int = 0
    energy_received_uj: int = 0
    energy_l1_uj: int = 0
    energy_l2_uj: int = 0
    energy_l1_received_uj: int = 0
    energy_l2_received_uj: int = 0
    pulse_offsets: tuple[int, int, int] = (0, 0, 0)  # closures at the last clear, per Kh
    counter_offset: int = 0
    demand_max_w: float = 0.0
    demand_max_at_us: int = 0
    demand_period_max_w: float = 0.0
    demand_period_max_at_us: int = 0
    demand_window_start_us: int = 0
    # The open demand window, so a process restart does not restart demand.
    demand_origin_us: int = 0
    demand_partial_uj: int = 0
    demand_recent_w: tuple[float, ...] = ()
    demand_closes: int = 0
    demand_w: float = 0.0
    power_up_count: int = 0
    uptime_us: int = 0
    powered: bool = False
    injected_errors: tuple[str, ...] = ()
    calibration_error_pct: float = 0.0  # size of an injected calibration error
    registration_mode: int = 0
    demand_config: tuple[int, int, int, int] = (15, 3, 0, 24)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NvState:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"non-volatile state: unknown fields {sorted(unknown)}")
        values = dict(data)
        for key in ("pulse_offsets", "injected_errors", "demand_config", "demand_recent_w"):
            if key in values:
                values[key] = tuple(values[key])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every register of the meter at one instant (the end of the last block)."""

    time_s: float
    serial_number: str
    model: str
    elements: int
    powered: bool
    energy_delivered_uj: int
    energy_received_uj: int
    energy_l1_uj: int
    energy_l2_uj: int
    energy_delivered_wh: int
    energy_received_wh: int
    energy_l1_wh: int
    energy_l2_wh: int
    energy_delivered_hwh: int
    energy_delivered_kwh: float
    power_w: float
    power_l1_w: float
    power_l2_w: float
    voltage_l1_v: float
    voltage_l2_v: float
    voltage_l1_l2_v: float
    current_l1_a: float
    current_l2_a: float
    power_factor_l1: float
    power_factor_l2: float
    frequency_hz: float
    demand_kw: float
    demand_max_kw: float
    demand_max_at_s: int
    demand_subinterval_elapsed_s: int
    demand_valid: int
    status_bits: int
    error_code: int
    lcd_screen: int
    indicators: int
    output_states: int
    pulses_10wh: int
    pulses_100wh: int
    pulses_1000wh: int
    counter_counts: int
    uptime_s: int
    power_up_count: int
    temperature_c: float
    # Register block C (REGISTER_MAP.md 201-205), as the meter runs them now.
    registration_mode: RegistrationMode
    demand_interval_min: int
    demand_subintervals: int
    demand_method: DemandMethod
    demand_max_window_h: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
