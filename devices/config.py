"""Closed sets, limits and the frozen configs every pulse device shares.

A source counts edges of a Mini Meter pulse output. ``kh_wh`` is the energy of one
full output cycle (close, open, close): 10, 100 or 1000 Wh on the Mini Meter. A
counter that counts one edge kind per cycle registers ``kh_wh`` per count; one that
counts both edges (``edge=both``) registers ``kh_wh / 2`` per count. Configs are
validated once, when built; every error names the field and what was expected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import Final

from twin.errors import DeviceError

#: Bounce filter applied to edge sources when none is given (Leviton collectors: 10-50 ms).
DEFAULT_DEBOUNCE_S: Final = 0.01
#: The Mini Meter's shortest half-period is ~0.3 s (10 Wh output at 60 kW): stay below it.
MAX_DEBOUNCE_S: Final = 0.25
#: A source that reported nothing for this long is stale (3 x Tasmota's default TelePeriod).
DEFAULT_STALE_AFTER_S: Final = 900.0
#: Counts per second no pulse input reaches (Leviton's fastest collector input: 100 Hz).
#: A counter decrease is a rollover only if the wrapped jump fits this rate.
DEFAULT_MAX_COUNT_RATE_HZ: Final = 100.0
#: Counts a wrapped jump may exceed the rate bound by (clock granularity, poll jitter).
ROLLOVER_SLACK_COUNTS: Final = 64
#: Mini Meter outputs are 10, 100 and 1000 Wh; anything positive up to this is accepted.
MAX_KH_WH: Final = 1_000_000.0


class EdgeKind(StrEnum):
    """Which transitions of an output a source counts (or which one an edge was)."""

    RISING = "rising"  # open -> closed (the output starts conducting)
    FALLING = "falling"  # closed -> open
    BOTH = "both"  # every transition; only meaningful as a counting mode


class CounterWidth(IntEnum):
    """Bits of a hardware counter: it wraps to 0 after ``2**width - 1``."""

    BITS_16 = 16
    BITS_32 = 32

    @property
    def modulus(self) -> int:
        return 1 << int(self)


class WordOrder(StrEnum):
    """Order of the 16-bit registers of a 32-bit counter."""

    BIG = "big"  # high word first (Moxa ioLogik E1200)
    LITTLE = "little"  # low word first (Advantech ADAM-6051)


class FunctionCode(IntEnum):
    """Modbus read function a counter module answers on."""

    HOLDING_REGISTERS = 3
    INPUT_REGISTERS = 4


class CounterEvent(StrEnum):
    """What a reading tells besides its counts."""

    BASELINE = "baseline"  # first counter value ever seen: counts from here on
    COUNT = "count"  # plain increase (or an edge)
    ROLLOVER = "rollover"  # the counter wrapped at its width; counted across the wrap
    RESET = "reset"  # the counter went back (cleared, device rebooted); counted from 0
    RESTORED = "restored"  # first value after a restart, counted from the stored one
    STALE = "stale"  # nothing heard for stale_after_s
    RESUMED = "resumed"  # heard again after being stale


def check_positive(name: str, value: float, *, upper: float | None = None) -> None:
    """Raise DeviceError unless ``0 < value`` (``<= upper``) and finite."""
    if not math.isfinite(value) or value <= 0 or (upper is not None and value > upper):
        limit = f" and at most {upper:g}" if upper is not None else ""
        raise DeviceError(f"{name}={value!r}: expected a number above 0{limit}")


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """What every pulse source needs, whatever its backend.

    Attributes:
        source_id: Key of this source's counter record in the store (stable across restarts).
        kh_wh: Energy of one full output cycle, Wh.
        edge: Which transitions are counted (by the hardware counter or by us).
        width: Width of a hardware counter; unused by edge sources.
        debounce_s: Edges closer than this to the previous accepted edge are bounces.
        stale_after_s: Silence after which the source is stale; None: never.
        max_count_rate_hz: Fastest plausible count rate (rollover vs reset decision).
    """

    source_id: str
    kh_wh: float
    edge: EdgeKind = EdgeKind.RISING
    width: CounterWidth = CounterWidth.BITS_32
    debounce_s: float = DEFAULT_DEBOUNCE_S
    stale_after_s: float | None = DEFAULT_STALE_AFTER_S
    max_count_rate_hz: float = DEFAULT_MAX_COUNT_RATE_HZ

    def __post_init__(self) -> None:
        if not self.source_id:
            raise DeviceError("source id is empty: expected a name unique per source")
        check_positive("kh", self.kh_wh, upper=MAX_KH_WH)
        if not 0 <= self.debounce_s <= MAX_DEBOUNCE_S:
            raise DeviceError(
                f"debounce={self.debounce_s!r} s: expected 0 to {MAX_DEBOUNCE_S} s "
                "(the Mini Meter's shortest half-period is ~0.3 s)"
            )
        if self.stale_after_s is not None:
            check_positive("stale", self.stale_after_s)
        check_positive("max_rate", self.max_count_rate_hz)

    @property
    def wh_per_count(self) -> float:
        """Energy one count stands for: Kh, or Kh/2 when both edges are counted."""
        return self.kh_wh / 2 if self.edge is EdgeKind.BOTH else self.kh_wh

    def counts_edge(self, kind: EdgeKind) -> bool:
        """Whether an edge of ``kind`` is counted under this config."""
        return self.edge is EdgeKind.BOTH or kind is self.edge


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """What every pulse sink needs: a name for logs and errors."""

    sink_id: str

    def __post_init__(self) -> None:
        if not self.sink_id:
            raise DeviceError("sink id is empty: expected a name unique per sink")
