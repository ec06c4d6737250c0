"""Units and limits the shell shares: durations, energy conversions, seed range.

One duration syntax for every file and option: ``90`` (seconds), ``2.5``, ``500ms``,
``15min``, ``1h30min``, ``7d``, ``1w`` (:func:`parse_duration_s`), printed back
compactly by :func:`format_duration`. The core counts energy in integer
microjoules (W x us); :func:`uj_to_wh` and :func:`wh_to_uj` convert for people and
reports using the core's own factor, so the factor exists once.

Limits used by more than one shell module are named here once. A limit the core
needs (input voltage, current, frequency and temperature ranges) is defined in
``twin.core`` and imported from there, never restated here.
"""

from __future__ import annotations

import re
from typing import Any, Final, overload

import numpy as np
import numpy.typing as npt

from twin.core import SEED_MAX, UJ_PER_WH

__all__ = [
    "SEED_MAX",
    "SEED_MIN",
    "SEED_RANGE_TEXT",
    "UJ_PER_WH",
    "format_duration",
    "parse_duration_s",
    "uj_to_kwh",
    "uj_to_wh",
    "wh_to_uj",
]

#: Seeds (profile noise, accuracy curves, fault generators): what numpy and a
#: signed 64-bit SQLite integer both hold.
SEED_MIN: Final = 0
SEED_RANGE_TEXT: Final = "0..2^63-1"

_DURATION_TERM = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|sec|s|min|m|h|d|w)?\s*")
_UNIT_S: Final[dict[str | None, float]] = {
    None: 1.0,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86_400.0,
    "w": 604_800.0,
}
_FORMAT_UNITS: Final = (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1))


def parse_duration_s(value: object) -> float | None:
    """Seconds for ``90``, ``2.5``, ``15min``, ``1h30min``, ``7d``; None when not a duration.

    Range checks (positive, finite, at most ...) are the caller's: each option says
    what it expects.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    pos, total = 0, 0.0
    while pos < len(value):
        m = _DURATION_TERM.match(value, pos)
        if m is None or m.end() == pos:
            return None
        total += float(m[1]) * _UNIT_S[m[2]]
        pos = m.end()
    return total


def format_duration(seconds: float) -> str:
    """Compact human duration: 90 -> '1min30s', 86400 -> '1d', 0.5 -> '0.5s'."""
    if seconds != int(seconds) or seconds < 60:
        return f"{seconds:g}s"
    out, rest = [], int(seconds)
    for unit, size in _FORMAT_UNITS:
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


@overload
def uj_to_wh(energy_uj: float) -> float: ...
@overload
def uj_to_wh(energy_uj: npt.NDArray[Any]) -> npt.NDArray[np.float64]: ...
def uj_to_wh(energy_uj: float | npt.NDArray[Any]) -> float | npt.NDArray[np.float64]:
    """Watt-hours of an energy in microjoules (a number or an array)."""
    return energy_uj / UJ_PER_WH


def uj_to_kwh(energy_uj: float) -> float:
    """Kilowatt-hours of an energy in microjoules."""
    return energy_uj / (1000 * UJ_PER_WH)


def wh_to_uj(energy_wh: float) -> int:
    """Whole microjoules of an energy in watt-hours (rounded to nearest)."""
    return round(energy_wh * UJ_PER_WH)
