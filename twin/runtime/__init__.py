"""The live twin: its frozen config, fleets, clocks, live meters and the `Twin` itself,
a composition of parts (store, meters, faults, Modbus servers, tick loop) entered on
one exit stack. See `twin.runtime.twin` for the public API parts and channels use.
"""

from twin.runtime.clock import AcceleratedClock, Clock, ManualClock, RealClock, make_clock
from twin.runtime.config import MAX_SAMPLE_RATE, TwinConfig, check_speed
from twin.runtime.fleet import (
    FleetSpec,
    MeterSpec,
    OnPowerLoss,
    load_fleet,
    meter_configs,
    parse_fleet,
    uniform_fleet,
    without_tcp,
)
from twin.runtime.meters import LiveMeter, MeterListener
from twin.runtime.override import OverrideSampler
from twin.runtime.twin import PARTS, Part, Twin

__all__ = [
    "MAX_SAMPLE_RATE",
    "PARTS",
    "AcceleratedClock",
    "Clock",
    "FleetSpec",
    "LiveMeter",
    "ManualClock",
    "MeterListener",
    "MeterSpec",
    "OnPowerLoss",
    "OverrideSampler",
    "Part",
    "RealClock",
    "Twin",
    "TwinConfig",
    "check_speed",
    "load_fleet",
    "make_clock",
    "meter_configs",
    "parse_fleet",
    "uniform_fleet",
    "without_tcp",
]
