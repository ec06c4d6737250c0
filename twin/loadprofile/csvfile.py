"""CSV time series for profiles: reading, units, validation, and the ``csv`` segment parser.

The file sits beside the profile. Lines starting with ``#`` and blank lines are
skipped. The header names the columns with units in brackets:

- time: ``time[s]``, ``time[min]`` or ``time[h]`` (offsets), or ``timestamp``
  (ISO 8601, absolute; offsets are taken from the first row);
- per line: ``L1.power[W|kW]`` (negative = export), ``L1.current[A|mA]``,
  ``L1.voltage[V]``, ``L1.pf`` (0..1), the same for L2;
- ``frequency[Hz]``, ``temperature[C]``.

Times must increase strictly; every value must be a finite number in range. A
message names the CSV file, its line and the column.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np

from twin.core import (
    ABSOLUTE_MAX_CURRENT_A,
    ABSOLUTE_MAX_VOLTAGE_V,
    INPUT_FREQUENCY_RANGE_HZ,
    INPUT_TEMPERATURE_RANGE_C,
)
from twin.errors import ProfileError
from twin.loadprofile.levels import (
    MAX_POWER_W,
    POWER_MIN_PF,
    POWER_MIN_VOLTAGE_V,
    SEGMENT_KEYS,
    Reader,
    parse_duration_us,
    parse_level,
    to_us,
)
from twin.loadprofile.reader import Ctx, LineDict
from twin.loadprofile.segments import Level
from twin.loadprofile.series import CsvSeries


class Interpolation(StrEnum):
    """Between two CSV rows: linear, or hold the earlier row."""

    LINEAR = "linear"
    HOLD = "hold"


_HEADER = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(?:\[\s*([^\]]*?)\s*\])?\s*$")
#: quantity -> {unit: scale to the internal unit}, (lo, hi) in internal units
_UNITS: dict[str, tuple[dict[str, float], tuple[float, float]]] = {
    "power": ({"W": 1.0, "kW": 1000.0}, (-MAX_POWER_W, MAX_POWER_W)),
    "current": ({"A": 1.0, "mA": 1e-3}, (0.0, ABSOLUTE_MAX_CURRENT_A)),
    "voltage": ({"V": 1.0}, (0.0, ABSOLUTE_MAX_VOLTAGE_V)),
    "pf": ({"": 1.0, "1": 1.0}, (0.0, 1.0)),
    "frequency": ({"Hz": 1.0}, INPUT_FREQUENCY_RANGE_HZ),
    "temperature": (
        {"C": 1.0, "°C": 1.0, "degC": 1.0},
        INPUT_TEMPERATURE_RANGE_C,
    ),
}
_TIME_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}
_COLUMNS = [f"{line}.{q}" for line in ("L1", "L2") for q in ("power", "current", "voltage", "pf")]
_COLUMNS += ["frequency", "temperature"]


def _column(label: str, line: int, raw: str) -> tuple[str, float]:
    """(internal name, scale) of one header cell, e.g. 'L1.power[kW]' -> ('L1.power', 1000)."""
    m = _HEADER.match(raw)
    where = f"{label}:{line}: column {raw.strip()!r}"
    if m is None:
        raise _error(f"{where}: invalid header; expected a name such as L1.power[W]")
    name, unit = m[1], m[2]
    if name == "time":
        if unit not in _TIME_UNITS:
            raise _error(f"{where}: unknown time unit; expected time[s], time[min] or time[h]")
        return name, _TIME_UNITS[unit]
    if name == "timestamp":
        return name, 1.0
    if name not in _COLUMNS:
        raise _error(
            f"{where}: unknown column; expected time[s], timestamp or {', '.join(_COLUMNS)}"
        )
    units, _ = _UNITS[name.split(".")[-1]]
    unit = unit or ""
    if unit not in units:
        expected = " or ".join(f"{name}[{u}]" if u else name for u in units)
        raise _error(f"{where}: unknown or missing unit {unit!r}; expected {expected}")
    return name, units[unit]


def _error(message: str) -> Exception:
    return ProfileError(message)


def read_series(text: str, label: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(offsets in s from the first row, {column: values}) of a CSV file."""
    rows = [
        (k + 1, row)
        for k, row in enumerate(csv.reader(io.StringIO(text)))
        if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")
    ]
    if not rows:
        raise _error(f"{label}:1: no header; expected a header such as time[s],L1.power[W]")
    header_line, header = rows[0]
    cols = [_column(label, header_line, cell) for cell in header]
    names = [n for n, _ in cols]
    for name in set(names):
        if names.count(name) > 1:
            raise _error(f"{label}:{header_line}: column {name!r} twice; expected each once")
    time_cols = [n for n in names if n in ("time", "timestamp")]
    if len(time_cols) != 1:
        raise _error(
            f"{label}:{header_line}: missing time column; expected one of time[s] or timestamp"
        )
    for line in ("L1", "L2"):
        if f"{line}.power" in names and f"{line}.current" in names:
            raise _error(
                f"{label}:{header_line}: both {line}.power and {line}.current; expected one"
            )
    if not any(n.endswith((".power", ".current")) for n in names):
        raise _error(
            f"{label}:{header_line}: missing load column; expected L1.power[W], L1.current[A], "
            "L2.power[W] or L2.current[A]"
        )
    if len(rows) < 2:
        raise _error(f"{label}:{header_line}: no data rows; expected at least one row")
    data: dict[str, list[float]] = {n: [] for n in names}
    for line_no, row in rows[1:]:
        if len(row) != len(cols):
            raise _error(f"{label}:{line_no}: {len(row)} fields; expected {len(cols)}")
        for (name, scale), cell in zip(cols, row, strict=True):
            data[name].append(_value(label, line_no, name, scale, cell.strip()))
    time_name = time_cols[0]
    times = np.array(data.pop(time_name))
    times = times - times[0] if time_name == "timestamp" else times
    steps = np.diff(times)
    if steps.size and steps.min() <= 0:
        k = int(np.argmin(steps)) + 1
        what = "duplicate" if steps[k - 1] == 0 else "unsorted"
        raise _error(
            f"{label}:{rows[k + 1][0]}: {what} time {header[names.index(time_name)].strip()}; "
            "expected times to increase strictly"
        )
    if times.size and times[0] < 0:
        raise _error(f"{label}:{rows[1][0]}: negative time; expected offsets >= 0")
    return times, {n: np.array(v) for n, v in data.items()}


def _value(label: str, line: int, name: str, scale: float, cell: str) -> float:
    where = f"{label}:{line}: {name}"
    if name == "timestamp":
        try:
            return datetime.fromisoformat(cell).timestamp()
        except ValueError:
            raise _error(f"{where}: {cell!r} invalid; expected ISO 8601 such as "
                         "2024-01-01T00:00:00") from None  # fmt: skip
    try:
        x = float(cell) * scale
    except ValueError:
        raise _error(f"{where}: {cell!r} invalid; expected a number") from None
    if not math.isfinite(x):
        raise _error(f"{where}: {cell!r} invalid; expected a finite number")
    if name != "time":
        lo, hi = _UNITS[name.split(".")[-1]][1]
        if not lo <= x <= hi:
            raise _error(f"{where}: {x:g} out of range; expected {lo:g}..{hi:g}")
    return x


def parse_csv(ctx: Ctx, data: LineDict, base: Level, read: Reader) -> CsvSeries:
    """A ``kind: csv`` segment; ``read`` fetches the file named beside the profile."""
    ctx.keys(data, (*SEGMENT_KEYS, "file", "duration", "interpolate"), ("file",))
    level = parse_level(ctx, data, base)
    fctx = ctx.at("file", data)
    name = fctx.text(data["file"], "a CSV file name beside the profile")
    if name.startswith("/") or ".." in name.replace("\\", "/").split("/"):
        fctx.fail(f"{name!r} invalid; expected a file beside the profile")
    try:
        text, label = read(name)
        times, columns = read_series(text, label)
    except ProfileError as exc:
        fctx.fail(str(exc))
    interpolation = Interpolation.LINEAR
    if "interpolate" in data:
        interpolation = ctx.at("interpolate", data).member(data["interpolate"], Interpolation)
    linear = interpolation is Interpolation.LINEAR
    if "duration" in data:
        duration_us = parse_duration_us(ctx, data)
    elif times.size >= 2:
        duration_us = to_us(float(times[-1] + (times[-1] - times[-2])))
    else:
        ctx.fail("missing required key 'duration'; expected it when the CSV has one row")
    for line, load in (("L1", level.l1), ("L2", level.l2)):
        if f"{line}.power" not in columns:
            continue
        volts: Any = columns.get(f"{line}.voltage", np.array([load.voltage_v]))
        pf: Any = columns.get(f"{line}.pf", np.array([load.pf]))
        if volts.min() < POWER_MIN_VOLTAGE_V:
            ctx.fail(f"{label}: {line}.voltage {volts.min():g} V with a power column; expected "
                     f">= {POWER_MIN_VOLTAGE_V:g} V (use an outage event for 0 V)")  # fmt: skip
        if pf.min() < POWER_MIN_PF:
            ctx.fail(f"{label}: {line}.pf {pf.min():g} with a power column; "
                     f"expected >= {POWER_MIN_PF:g}")  # fmt: skip
    return CsvSeries(duration_us, level, times, columns, linear)
