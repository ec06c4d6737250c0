"""Turning raw observations into counts: the rules every backend shares.

Pure (no IO, no clock of its own): the caller passes each observation with its time.

Rules:
1. A counter value is first a *baseline* (nothing counted) unless a stored record
   exists; then the difference to the stored raw value is counted (*restored*), so a
   restart loses nothing and counts nothing twice.
2. An increase is counted as is. A decrease is a *rollover* only if the wrapped
   jump ``2**width - last + raw`` is no more than the source could have counted since
   the previous observation (``max_count_rate_hz`` x elapsed + ``ROLLOVER_SLACK_COUNTS``);
   otherwise it is a *reset* (cleared or rebooted), and ``raw`` counts since the reset
   are counted. Never a negative jump.
3. Counts seen at a poll happened after the previous observation: their timing
   uncertainty is the time since it (a poll period, or an outage).
4. Edges closer than ``debounce_s`` to the previous accepted edge are bounces and
   dropped; only accepted edges of the counted kind count.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from devices.config import ROLLOVER_SLACK_COUNTS, CounterEvent, EdgeKind, SourceConfig
from devices.store import CounterRecord
from twin.errors import DeviceError


@dataclass(frozen=True, slots=True)
class CountStep:
    """The outcome of one observation: new counts, why, and their timing uncertainty."""

    counts: int
    event: CounterEvent
    uncertainty_s: float


class CounterTracker:
    """Running counter state of one source; see the module rules."""

    def __init__(
        self, config: SourceConfig, record: CounterRecord | None, *, wall_now_s: float
    ) -> None:
        self._config = config
        self._modulus = config.width.modulus
        self._restored = record is not None
        self._total = record.total_counts if record else 0
        self._last_raw = record.last_raw if record else None
        # Time since the stored record, on the wall clock: the only clock that spans a restart.
        self._elapsed_at_restore_s = (
            max(0.0, wall_now_s - record.saved_at_unix_s) if record else 0.0
        )
        self._last_at_s: float | None = None
        self._last_edge_at_s: float | None = None

    @property
    def total_counts(self) -> int:
        return self._total

    @property
    def last_raw(self) -> int | None:
        return self._last_raw

    def record(self, wall_now_s: float) -> CounterRecord:
        """The state to persist now."""
        return CounterRecord(self._total, self._last_raw, wall_now_s)

    def counter(self, raw: int, at_s: float) -> CountStep:
        """Apply a hardware counter value read at ``at_s``."""
        if not 0 <= raw < self._modulus:
            raise DeviceError(
                f"source {self._config.source_id}: counter value {raw} does not fit "
                f"{int(self._config.width)} bits: expected 0..{self._modulus - 1} "
                "(is width= right?)"
            )
        elapsed_s = self._elapsed(at_s)
        last, self._last_raw = self._last_raw, raw
        restored, self._restored = self._restored, False
        self._last_at_s = at_s
        if last is None:
            return CountStep(0, CounterEvent.BASELINE, 0.0)
        if raw >= last:
            counts = raw - last
            event = CounterEvent.RESTORED if restored else CounterEvent.COUNT
        else:
            wrapped = self._modulus - last + raw
            plausible = math.ceil(self._config.max_count_rate_hz * elapsed_s)
            if wrapped <= plausible + ROLLOVER_SLACK_COUNTS:
                counts, event = wrapped, CounterEvent.ROLLOVER
            else:
                counts, event = raw, CounterEvent.RESET
        self._total += counts
        return CountStep(counts, event, elapsed_s)

    def edge(self, kind: EdgeKind, at_s: float, uncertainty_s: float) -> CountStep | None:
        """Apply one edge; None for a bounce (nothing happened)."""
        if kind is EdgeKind.BOTH:
            raise DeviceError("an edge is rising or falling, not both")
        previous = self._last_edge_at_s
        if previous is not None and at_s - previous < self._config.debounce_s:
            return None
        self._last_edge_at_s = at_s
        self._last_at_s = at_s
        restored, self._restored = self._restored, False
        counts = 1 if self._config.counts_edge(kind) else 0
        self._total += counts
        event = CounterEvent.RESTORED if restored else CounterEvent.COUNT
        return CountStep(counts, event, uncertainty_s)

    def _elapsed(self, at_s: float) -> float:
        if self._last_at_s is None:
            return self._elapsed_at_restore_s
        return max(0.0, at_s - self._last_at_s)
