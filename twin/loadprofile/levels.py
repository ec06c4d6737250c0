"""The meter inputs a profile states at one instant, and the keys every segment shares.

Every segment kind accepts ``L1``, ``L2``, ``frequency`` and ``temperature`` over the
level it inherits (the profile's ``defaults``, or the enclosing composite segment);
:func:`parse_level` reads them into a frozen :class:`~twin.loadprofile.segments.Level`.
A line gives its current or its power (negative = export), never both; a current
derived from a power needs a real voltage and power factor, so those are checked
here once for every segment kind.

Input ranges are the core's (``twin.core.models``): the profile refuses what the
meter would refuse, naming the key and the range.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from twin.core import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_VOLTAGE_V,
    INPUT_FREQUENCY_RANGE_HZ,
    INPUT_TEMPERATURE_RANGE_C,
)
from twin.loadprofile.reader import Ctx, LineDict
from twin.loadprofile.segments import Level, Load

LEVEL_KEYS: Final = ("L1", "L2", "frequency", "temperature")
LOAD_KEYS: Final = ("voltage", "current", "power", "pf", "leading")
#: Keys every segment mapping accepts besides its own.
SEGMENT_KEYS: Final = ("kind", *LEVEL_KEYS)
MAX_POWER_W: Final = ABSOLUTE_MAX_VOLTAGE_V * ABSOLUTE_MAX_CURRENT_A
#: Deriving current from power needs a real voltage: below this it would explode.
POWER_MIN_VOLTAGE_V: Final = 60.0
POWER_MIN_PF: Final = 0.05

#: Reads a file named in a profile (CSV), relative to the profile; returns (text, label).
Reader = Callable[[str], tuple[str, str]]


def to_us(seconds: float) -> int:
    """Whole microseconds: profile times are integers so sampling is split-invariant."""
    return round(seconds * 1e6)


def parse_duration_us(ctx: Ctx, data: LineDict, key: str = "duration") -> int:
    """``data[key]`` as a positive duration in microseconds."""
    return to_us(ctx.at(key, data).duration_s(data[key]))


def parse_voltage(ctx: Ctx, value: Any) -> float:
    return ctx.number(value, 0, ABSOLUTE_MAX_VOLTAGE_V, "V")


def parse_current(ctx: Ctx, value: Any) -> float:
    return ctx.number(value, 0, ABSOLUTE_MAX_CURRENT_A, "A")


def parse_frequency(ctx: Ctx, value: Any) -> float:
    return ctx.number(value, *INPUT_FREQUENCY_RANGE_HZ, "Hz")


def parse_temperature(ctx: Ctx, value: Any) -> float:
    return ctx.number(value, *INPUT_TEMPERATURE_RANGE_C, "°C")


def parse_load(ctx: Ctx, value: Any, base: Load) -> Load:
    data = ctx.mapping(value, "a mapping of voltage, current or power, pf, leading")
    ctx.keys(data, LOAD_KEYS)
    if "current" in data and "power" in data:
        ctx.fail("both current and power given; expected one of them")
    voltage = base.voltage_v
    if "voltage" in data:
        voltage = parse_voltage(ctx.at("voltage", data), data["voltage"])
    current, power = base.current_a, base.power_w
    if "current" in data:
        current, power = parse_current(ctx.at("current", data), data["current"]), None
    if "power" in data:
        power = ctx.at("power", data).number(data["power"], -MAX_POWER_W, MAX_POWER_W, "W")
        current = 0.0
    pf = base.pf
    if "pf" in data:
        pf = ctx.at("pf", data).number(data["pf"], 0.0, 1.0)
    leading = (
        ctx.at("leading", data).boolean(data["leading"]) if "leading" in data else base.leading
    )
    load = Load(voltage_v=voltage, current_a=current, power_w=power, pf=pf, leading=leading)
    if power is not None and power != 0:
        if pf < POWER_MIN_PF:
            ctx.fail(f"pf {pf:g} with a power; expected pf >= {POWER_MIN_PF} to derive a current")
        if voltage < POWER_MIN_VOLTAGE_V:
            # 0 V included: the derived current would be 0 and the load silently
            # register nothing. A dead line is an outage event or `current: 0`.
            where, what = (ctx.at("voltage", data), "") if "voltage" in data else (ctx, "voltage ")
            where.fail(
                f"{what}{voltage:g} V with a power; expected >= {POWER_MIN_VOLTAGE_V:g} V "
                "(or give current instead of power; an outage event for 0 V)"
            )
    return load


def parse_level(ctx: Ctx, data: LineDict, base: Level) -> Level:
    """The L1/L2/frequency/temperature keys of ``data`` over ``base``."""
    l1 = parse_load(ctx.at("L1", data), data["L1"], base.l1) if "L1" in data else base.l1
    l2 = parse_load(ctx.at("L2", data), data["L2"], base.l2) if "L2" in data else base.l2
    freq = base.frequency_hz
    if "frequency" in data:
        freq = parse_frequency(ctx.at("frequency", data), data["frequency"])
    temp = base.temperature_c
    if "temperature" in data:
        temp = parse_temperature(ctx.at("temperature", data), data["temperature"])
    return Level(l1=l1, l2=l2, frequency_hz=freq, temperature_c=temp)


def parse_level_mapping(ctx: Ctx, value: Any, base: Level) -> Level:
    """A nested level such as ``defaults``, ``from``/``to`` or ``low``/``high``."""
    data = ctx.mapping(value, "a mapping of L1, L2, frequency, temperature")
    ctx.keys(data, LEVEL_KEYS)
    return parse_level(ctx, data, base)
