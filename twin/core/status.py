"""Status bits, error codes and the LCD, as REGISTER_MAP.md defines them.

Status bits are computed per sample as a uint32 array so that error raised and
cleared events carry the sample they happened in. The error code is the highest
priority active error (what the LCD error screen shows). The LCD rotates through
total kWh, max demand, instantaneous kW and (when an error is active) the error
screen, one screen every ``lcd_screen_s`` of uptime, after a boot screen.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from enum import IntEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from twin.core.events import ErrorCleared, ErrorRaised
from twin.core.limits import (
    FREQUENCY_TOLERANCE_PCT,
    PF_MIN,
    RATED_FREQUENCIES_HZ,
    SUPPLY_MAX_V,
    SUPPLY_MIN_V,
    TEMPERATURE_RANGE_C,
    VOLTAGE_MISSING_BELOW_V,
)

U32Array = npt.NDArray[np.uint32]
#: Below this many samples the per-sample tests cost less than proving them uniform.
_UNIFORM_CHECK_MIN = 256
_KEPT_CONSTANTS = 64  # per-block constants kept for the next blocks (sizes, frequencies)


class StatusBit(IntEnum):
    REVERSE_L1 = 0
    REVERSE_L2 = 1
    VOLTAGE_MISSING_L1 = 2
    VOLTAGE_MISSING_L2 = 3
    UNDER_VOLTAGE = 4
    OVER_VOLTAGE = 5
    OVER_CURRENT = 6
    PF_BELOW_RANGE = 7
    FREQUENCY_OUT_OF_RANGE = 8
    TEMPERATURE_OUT_OF_RANGE = 9
    MEMORY_ERROR = 10
    CALIBRATION_ERROR = 11
    BOOTING = 12
    UNPOWERED = 13
    MIRROR_INPUT_STALE = 14
    MIRROR_OUTSIDE_CLASS = 15


def _mask(*bits: StatusBit) -> int:
    return sum(1 << b for b in bits)


class ErrorCode(IntEnum):
    """Error codes, highest priority first; 0 means no error."""

    NONE = 0
    MEMORY = 1
    CALIBRATION = 2
    VOLTAGE_MISSING = 3
    OVER_VOLTAGE = 4
    REVERSED_CT = 5
    OVER_CURRENT = 6
    PF_BELOW_RANGE = 7
    FREQUENCY = 8
    TEMPERATURE = 9


#: Which status bits raise each error code, in priority order.
ERROR_BITS: tuple[tuple[ErrorCode, int], ...] = (
    (ErrorCode.MEMORY, _mask(StatusBit.MEMORY_ERROR)),
    (ErrorCode.CALIBRATION, _mask(StatusBit.CALIBRATION_ERROR)),
    (
        ErrorCode.VOLTAGE_MISSING,
        _mask(StatusBit.VOLTAGE_MISSING_L1, StatusBit.VOLTAGE_MISSING_L2, StatusBit.UNDER_VOLTAGE),
    ),
    (ErrorCode.OVER_VOLTAGE, _mask(StatusBit.OVER_VOLTAGE)),
    (ErrorCode.REVERSED_CT, _mask(StatusBit.REVERSE_L1, StatusBit.REVERSE_L2)),
    (ErrorCode.OVER_CURRENT, _mask(StatusBit.OVER_CURRENT)),
    (ErrorCode.PF_BELOW_RANGE, _mask(StatusBit.PF_BELOW_RANGE)),
    (ErrorCode.FREQUENCY, _mask(StatusBit.FREQUENCY_OUT_OF_RANGE)),
    (ErrorCode.TEMPERATURE, _mask(StatusBit.TEMPERATURE_OUT_OF_RANGE)),
)
ERROR_MASK = 0
for _code, _m in ERROR_BITS:
    ERROR_MASK |= _m

#: Error codes, highest priority first (what the LCD error screen shows first).
ERROR_PRIORITY: tuple[ErrorCode, ...] = tuple(code for code, _ in ERROR_BITS)


class LcdScreen(IntEnum):
    OFF = 0
    BOOT = 1
    TOTAL_KWH = 2
    MAX_DEMAND_KW = 3
    INSTANT_KW = 4
    ERROR = 5


class Indicator(IntEnum):
    LOAD_LED = 0
    REVERSE_ARROW = 1
    L1_SYMBOL = 2
    L2_SYMBOL = 3
    L1_BLINK = 4
    L2_BLINK = 5
    LCD_ON = 6
    L1_LEADING = 7
    L2_LEADING = 8


def error_code(bits: int) -> ErrorCode:
    for code, mask in ERROR_BITS:
        if bits & mask:
            return code
    return ErrorCode.NONE


def active_errors(bits: int) -> frozenset[ErrorCode]:
    return frozenset(code for code, mask in ERROR_BITS if bits & mask)


def highest_error(codes: Iterable[int]) -> ErrorCode:
    """The highest-priority code among ``codes`` (NONE when there is none)."""
    present = {ErrorCode(c) for c in codes}
    return next((code for code in ERROR_PRIORITY if code in present), ErrorCode.NONE)


def highest_error_codes(code_masks: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """:func:`highest_error` per element of an array of code sets (bit ``c`` = code ``c``)."""
    out = np.zeros(code_masks.shape, np.int64)
    for code in reversed(ERROR_PRIORITY):
        out = np.where(code_masks & (1 << code), int(code), out)
    return out


def error_events(
    prev_bits: int, bits: npt.NDArray[np.uint32], time0_us: int, dt_us: int
) -> list[ErrorRaised | ErrorCleared]:
    """Raised/cleared events where the error set of per-sample ``bits`` changes.

    Sample ``j`` is at ``time0_us + j * dt_us``; ``prev_bits`` are the bits before it.
    """
    prev_err = prev_bits & ERROR_MASK
    if bits.shape[0] == 1 or bits.strides[0] == 0:
        # A constant (a broadcast, or one sample): any change is at its first sample.
        first_err = int(bits[0]) & ERROR_MASK
        if first_err == prev_err:
            return []
        changed, errs = [0], np.array([first_err], np.uint32)
    else:
        errs = bits & np.uint32(ERROR_MASK)
        changed = (np.flatnonzero(errs[1:] != errs[:-1]) + 1).tolist()
        if int(errs[0]) != prev_err:
            changed.insert(0, 0)
    events: list[ErrorRaised | ErrorCleared] = []
    for j in changed:
        before = active_errors(prev_err if j == 0 else int(errs[j - 1]))
        after = active_errors(int(errs[j]))
        t = (time0_us + j * dt_us) / 1e6
        for code in sorted(after - before):
            events.append(ErrorRaised(time_s=t, code=int(code), name=code.name.lower()))
        for code in sorted(before - after):
            events.append(ErrorCleared(time_s=t, code=int(code), name=code.name.lower()))
    return events


class InputExtremes(NamedTuple):
    """A block's input extremes over its elements (``shared.measure`` takes them)."""

    voltage_min_v: float
    voltage_max_v: float
    current_max_a: float


def line_status_bits(
    elements: int,
    voltage_v: npt.NDArray[np.float64],
    current_a: npt.NDArray[np.float64],
    power_w: npt.NDArray[np.float64],
    pf: npt.NDArray[np.float64],
    frequency_hz: npt.NDArray[np.float64],
    temperature_c: npt.NDArray[np.float64],
    max_current_a: float,
    starting_current_a: float,
    extremes: InputExtremes | None = None,
) -> U32Array:
    """Per-sample status bits 0-9 of a powered meter (arrays (2, n) and (n,)); ``pf`` signed.

    ``extremes``: those of these voltages and currents, when the caller has them.
    Read-only: a block whose bits cannot change gets a broadcast of one value.
    """
    n = frequency_hz.shape[0]
    if n >= _UNIFORM_CHECK_MIN:
        if extremes is None:
            extremes = input_extremes(voltage_v[:elements], current_a[:elements])
        uniform = _uniform_bits(
            elements, power_w, pf, frequency_hz, temperature_c, max_current_a, extremes
        )
        if uniform is not None:  # one value for the block: a read-only broadcast, no array
            return _repeated(uniform, n)
    pf_abs = np.abs(pf)
    bits = np.zeros(n, dtype=np.int64)
    # int(): numpy drops any error an IntEnum raises in its lookups: a Ctrl-C there was lost.
    for e in range(elements):
        v = voltage_v[e]
        bits |= (power_w[e] < 0).astype(np.int64) << StatusBit.REVERSE_L1 + e
        bits |= (v < VOLTAGE_MISSING_BELOW_V).astype(np.int64) << StatusBit.VOLTAGE_MISSING_L1 + e
        low = (v >= VOLTAGE_MISSING_BELOW_V) & (v < SUPPLY_MIN_V)
        bits |= low.astype(np.int64) << int(StatusBit.UNDER_VOLTAGE)
        bits |= (v > SUPPLY_MAX_V).astype(np.int64) << int(StatusBit.OVER_VOLTAGE)
        bits |= (current_a[e] > max_current_a).astype(np.int64) << int(StatusBit.OVER_CURRENT)
        low_pf = (current_a[e] >= starting_current_a) & (pf_abs[e] < PF_MIN)
        bits |= low_pf.astype(np.int64) << int(StatusBit.PF_BELOW_RANGE)
    f_out = np.asarray(_frequency_out(frequency_hz), np.int64)
    bits |= f_out << int(StatusBit.FREQUENCY_OUT_OF_RANGE)
    t_lo, t_hi = TEMPERATURE_RANGE_C
    hot = (temperature_c < t_lo) | (temperature_c > t_hi)
    bits |= hot.astype(np.int64) << int(StatusBit.TEMPERATURE_OUT_OF_RANGE)
    return bits.astype(np.uint32)


@functools.lru_cache(maxsize=_KEPT_CONSTANTS)
def _repeated(value: int, n: int) -> U32Array:
    """``n`` copies of ``value``: a read-only broadcast (so kept and handed out again)."""
    one = np.array([value], np.uint32)
    view: U32Array = np.ndarray((n,), np.uint32, one, 0, (0,))
    view.flags.writeable = False
    return view


def _constant_view(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """An array, or its first column when it is a broadcast constant along the last axis."""
    if values.shape[-1] > 1 and values.strides[-1] == 0:
        return values[..., :1]
    return values


def _span(values: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(min, max) of a 1-D array; a broadcast constant costs one element, no pass."""
    if values.shape[0] == 1 or values.strides[0] == 0:
        return float(values[0]), float(values[0])
    return float(values.min()), float(values.max())


def highest(values: npt.NDArray[np.float64]) -> float:
    """The largest value; a broadcast constant costs one element."""
    return float(_constant_view(values).max())


def lowest_per_line(values: npt.NDArray[np.float64]) -> list[float]:
    """The smallest value of each row (elements, n); a broadcast constant costs one."""
    return [float(x) for x in _constant_view(values).min(axis=1).tolist()]


def input_extremes(
    voltage_v: npt.NDArray[np.float64], current_a: npt.NDArray[np.float64]
) -> InputExtremes:
    """The extremes of voltages and currents (elements, n) over all their elements."""
    return InputExtremes(min(lowest_per_line(voltage_v)), highest(voltage_v), highest(current_a))


def _uniform_bits(
    elements: int,
    power_w: npt.NDArray[np.float64],
    pf: npt.NDArray[np.float64],
    frequency_hz: npt.NDArray[np.float64],
    temperature_c: npt.NDArray[np.float64],
    max_current_a: float,
    extremes: InputExtremes,
) -> int | None:
    """The bits when the extremes show that no condition changes within the block, else None.

    The usual block (in range, importing, good PF) sets no bit, and min/max passes
    prove it at a fraction of the cost of the per-sample tests (one pass per test
    over all elements at once). Power is V x I x cos(delta) times positive factors
    (accuracy ratio, calibration: see ``registration.element_power``) with V, I >= 0,
    so where no cos(delta) is negative no power is either, without a pass over it.
    """
    t_lo, t_hi = TEMPERATURE_RANGE_C
    t_min, t_max = _span(temperature_c)
    if t_min >= t_lo and t_max <= t_hi:
        bits = 0
    elif t_max < t_lo or t_min > t_hi:
        bits = 1 << StatusBit.TEMPERATURE_OUT_OF_RANGE
    else:
        return None
    f_out = _frequency_out(frequency_hz)
    if isinstance(f_out, np.ndarray):
        if not f_out.all() and f_out.any():
            return None
        f_out = bool(f_out[0])
    if f_out:  # out of range everywhere, or nowhere
        bits |= 1 << StatusBit.FREQUENCY_OUT_OF_RANGE
    for e in range(elements):
        pf_min, pf_max = _span(pf[e])  # usually a broadcast constant: tested first
        if not (pf_min >= PF_MIN or pf_max <= -PF_MIN):
            return None
        if pf_min < 0.0 and float(_constant_view(power_w[e]).min()) < 0.0:
            return None
    if not (
        extremes.voltage_min_v >= SUPPLY_MIN_V
        and extremes.voltage_max_v <= SUPPLY_MAX_V
        and extremes.current_max_a <= max_current_a
    ):
        return None  # something may be set: test every sample
    return bits


#: The reverse-power bits: set in a sample where an element's power is negative.
_REVERSE_MASK = _mask(StatusBit.REVERSE_L1, StatusBit.REVERSE_L2)


def never_reversed(bits: U32Array) -> bool:
    """Whether ``bits`` show at a glance that no element's power is negative anywhere.

    True for a broadcast constant (see :func:`line_status_bits`) without a
    reverse-power bit; per-sample bits are not searched (the caller decides then).
    """
    if bits.shape[0] < 2 or bits.strides[0] != 0:
        return False
    return not int(bits[0]) & _REVERSE_MASK


def _frequency_out(frequency_hz: npt.NDArray[np.float64]) -> bool | npt.NDArray[np.bool_]:
    """:func:`frequency_out_of_range` per sample, or once when the frequency is constant."""
    if frequency_hz.shape[0] == 1 or frequency_hz.strides[0] == 0:
        return _frequency_out_at(float(frequency_hz[0]))
    return frequency_out_of_range(frequency_hz)


@functools.lru_cache(maxsize=_KEPT_CONSTANTS)
def _frequency_out_at(frequency_hz: float) -> bool:
    """The test of one value: a numpy call on one value costs twenty look-ups."""
    return bool(frequency_out_of_range(np.array([frequency_hz]))[0])


def frequency_out_of_range(frequency_hz: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """More than the tolerance from the nearer rated frequency (50 or 60 Hz)."""
    f50, f60 = RATED_FREQUENCIES_HZ
    nominal = np.where(frequency_hz < (f50 + f60) / 2, f50, f60)
    out: npt.NDArray[np.bool_] = np.abs(frequency_hz - nominal) > (
        nominal * FREQUENCY_TOLERANCE_PCT / 100.0
    )
    return out


def lcd_screen(
    powered: bool, booting: bool, since_boot_s: float, screen_s: float, bits: int
) -> LcdScreen:
    if not powered:
        return LcdScreen.OFF
    if booting:
        return LcdScreen.BOOT
    screens = [LcdScreen.TOTAL_KWH, LcdScreen.MAX_DEMAND_KW, LcdScreen.INSTANT_KW]
    if bits & ERROR_MASK:
        screens.append(LcdScreen.ERROR)
    return screens[int(max(since_boot_s, 0.0) // screen_s) % len(screens)]


def indicator_bits(
    lines: list[tuple[float, float, float, float, bool]],
    bits: int,
    load_led: bool,
    max_current_a: float,
    starting_current_a: float,
) -> int:
    """The ``indicators`` register of a powered meter.

    ``lines`` holds (V, I, P, |PF|, leading) per element. A line's symbol shows while
    it has voltage; it blinks while an installation error concerns it (the guide:
    both symbols blink when both lines have the error).
    """
    flags = {Indicator.LCD_ON}
    if load_led:
        flags.add(Indicator.LOAD_LED)
    if bits & (1 << StatusBit.REVERSE_L1 | 1 << StatusBit.REVERSE_L2):
        flags.add(Indicator.REVERSE_ARROW)
    for line, (volts, amps, power_w, pf, leading) in enumerate(lines):
        if volts >= VOLTAGE_MISSING_BELOW_V:
            flags.add(Indicator(Indicator.L1_SYMBOL + line))
        install_error = (
            power_w < 0
            or volts < SUPPLY_MIN_V
            or volts > SUPPLY_MAX_V
            or amps > max_current_a
            or (amps >= starting_current_a and pf < PF_MIN)
        )
        if install_error:
            flags.add(Indicator(Indicator.L1_BLINK + line))
        if leading and amps >= starting_current_a:
            flags.add(Indicator(Indicator.L1_LEADING + line))
    return sum(1 << f for f in flags)
