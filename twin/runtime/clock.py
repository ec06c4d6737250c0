"""Clocks owned by the shell: the meter core never reads time, the runtime asks a clock.

A clock answers one question, "how many seconds of *meter time* have passed since
you started?" (``elapsed_s``). The runtime steps the core up to that time on each
tick, in samples of a fixed period, so the speed only changes how many samples a
tick carries, never what one sample means.

- :class:`RealClock`: meter time is wall time (monotonic, immune to NTP steps).
- :class:`AcceleratedClock`: meter time runs ``speed`` times faster than wall time;
  :meth:`AcceleratedClock.set_speed` changes the speed from now on (meter time
  already elapsed stays as it was).
- :class:`ManualClock`: meter time moves only when a test calls :meth:`advance`.
  The runtime does not tick on its own under a manual clock (``ticks`` is False).
"""

from __future__ import annotations

import math
import time
from typing import Protocol

from twin.control import MAX_SPEED


class Clock(Protocol):
    """Meter time since the clock started, in seconds."""

    @property
    def ticks(self) -> bool:
        """True when the runtime should step on a timer (real and accelerated clocks)."""
        ...

    @property
    def speed(self) -> float: ...

    def elapsed_s(self) -> float: ...


class AcceleratedClock:
    """Meter time = ``speed`` × monotonic wall time since construction."""

    ticks = True

    def __init__(self, speed: float = 1.0) -> None:
        self._speed = _checked(speed)
        self._t0 = time.monotonic()
        self._base_s = 0.0  # meter time elapsed before the last speed change

    @property
    def speed(self) -> float:
        return self._speed

    def set_speed(self, speed: float) -> None:
        """Run at ``speed`` from now on; the meter time so far is kept."""
        speed = _checked(speed)
        now = time.monotonic()
        self._base_s += (now - self._t0) * self._speed
        self._t0, self._speed = now, speed

    def elapsed_s(self) -> float:
        return self._base_s + (time.monotonic() - self._t0) * self._speed


def _checked(speed: float) -> float:
    if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise ValueError(f"speed: {speed!r} out of range; expected 0 < speed <= {MAX_SPEED:g}")
    return float(speed)


class RealClock(AcceleratedClock):
    """Meter time is wall time."""

    def __init__(self) -> None:
        super().__init__(1.0)


class ManualClock:
    """Meter time moves only by :meth:`advance`: deterministic tests."""

    ticks = False
    speed = 1.0

    def __init__(self) -> None:
        self._elapsed_s = 0.0

    def advance(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(f"advance: {seconds!r} invalid; expected seconds >= 0")
        self._elapsed_s += seconds

    def elapsed_s(self) -> float:
        return self._elapsed_s


def make_clock(speed: float | None) -> Clock:
    """``None`` -> manual clock; 1 -> real time; anything else -> accelerated."""
    if speed is None:
        return ManualClock()
    return RealClock() if speed == 1.0 else AcceleratedClock(speed)
