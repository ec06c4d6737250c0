"""The rig of the pulses target: what applies the load FILE and owns the time of a run.

Theory of operation
-------------------
A meter seen only through its pulse outputs is measured while a rig applies a known
load. The suite reads the pulse source (a ``devices`` URL) from the moment the rig
starts the load (rig time 0) until the load FILE's end, then judges every window of
that recording. :class:`WallRig` is a bench whose rig is started by hand or by its
own program at the moment the suite starts recording: time is the wall clock. A rig
the suite can start itself (a programmable source, or a stand-in meter on a manual
clock in the suite's own tests) is supplied by a plugin implementing the
``pytest_hil_rig`` hook (:mod:`hil_tests.hooks`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from devices import PulseSource


class Rig(Protocol):
    """Applies the load to the meter under test; its clock is the run's time."""

    def now_s(self) -> float:
        """Seconds since the load started (the pulse source stamps readings with it)."""
        ...

    async def start(self) -> None:
        """Start applying the load FILE: rig time 0."""
        ...

    async def stop(self) -> None:
        """Stop applying the load."""
        ...

    async def wait(self, seconds: float, source: PulseSource) -> None:
        """Let ``seconds`` of rig time pass; return once ``source`` has read what the
        meter emitted in them."""
        ...


class WallRig:
    """A bench rig started with the recording; its time is the wall clock."""

    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def now_s(self) -> float:
        return time.monotonic() - self._t0

    async def start(self) -> None:
        self._t0 = time.monotonic()

    async def stop(self) -> None:
        """The bench's own program ends the load."""

    async def wait(self, seconds: float, source: PulseSource) -> None:
        await asyncio.sleep(seconds)  # the source's reader runs meanwhile
