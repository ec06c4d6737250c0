"""What sources observe and report: raw observations in, :class:`PulseReading` out.

Backends produce :data:`Observation` s (a hardware counter value, one edge, or a
heartbeat); the base turns them into readings. :class:`DeviceIOError` marks a
transient failure the base retries.
"""

from __future__ import annotations

from dataclasses import dataclass

from devices.config import CounterEvent, EdgeKind
from twin.errors import DeviceError


class DeviceIOError(DeviceError):
    """A transient failure talking to a device (refused, timed out, exception reply)."""


@dataclass(frozen=True, slots=True)
class CounterSample:
    """A hardware counter's value, read at ``at_s`` (source clock)."""

    raw: int
    at_s: float


@dataclass(frozen=True, slots=True)
class EdgeSample:
    """One transition of the output; it happened within ``uncertainty_s`` before ``at_s``."""

    kind: EdgeKind
    at_s: float
    uncertainty_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The device answered but had nothing to count (keeps the source fresh)."""

    at_s: float


Observation = CounterSample | EdgeSample | Heartbeat


@dataclass(frozen=True, slots=True)
class PulseReading:
    """What a source reports: new counts, the running total, and how sure it is of when.

    The ``counts`` new counts happened within ``[at_s - uncertainty_s, at_s]`` on the
    source's clock. ``total_counts`` never decreases and survives restarts.
    """

    source_id: str
    at_s: float
    uncertainty_s: float
    counts: int
    total_counts: int
    wh_per_count: float
    event: CounterEvent
    stale: bool = False
    raw_counter: int | None = None

    @property
    def energy_wh(self) -> float:
        """Energy of every count so far (``total_counts`` x ``wh_per_count``)."""
        return self.total_counts * self.wh_per_count

    @property
    def counts_wh(self) -> float:
        """Energy of this reading's new counts."""
        return self.counts * self.wh_per_count
