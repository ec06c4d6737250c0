"""The Mirror part: a physical meter's pulse output, followed and cross-checked, live.

Theory of operation
-------------------
``async with Mirror(config) as mirror:`` opens the pulse source its URL names
(:func:`devices.open_source`), with the counter records in the durable store: a JSON
file in the state directory (:data:`COUNTER_FILE`). The source's running count
survives a restart of the source and of the mirror, and the follow-mode energy is
that count times the Wh per count, so neither loses nor double-counts. A task reads
the source; each reading goes through :meth:`Mirror.feed` (synchronous, so tests
can feed readings directly):

- the follow state (:class:`~twin.mirror.follow.Follow`) counts it;
- when a reference is set and the reading counted edges, the reference is driven up
  to the reading and an :class:`~twin.mirror.crosscheck.EdgeMark` is added: the
  reference's energy at both ends of the interval the edge is known in. A mark the
  reference has no history for (a restart, a very long outage) starts a new window;
- a stale reading sets the verdict to input stale until the source answers again.

Time is mirror time: seconds since the mirror started on its clock (monotonic unless
given). Polled sources stamp readings on it; a virtual source carries the time its
sink was given, which a test makes the stand-in's meter time. The reference plays
its profile from mirror time 0 (plus an offset): start the mirror when the rig
starts the profile.

The published state (:meth:`Mirror.snapshot`, :meth:`Mirror.extra`) is what the
register image needs: the follow snapshot with status bits 14/15, and registers
70-78 (source_mode 1, registration, bound, verdict, pulses). :attr:`Mirror.endpoint`
serves that image; :meth:`refresh` rebuilds it (after each reading and every
``refresh_s``). :attr:`history` keeps one point per mark for the report.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Final, Self

from devices import (
    CounterEvent,
    CounterStore,
    JsonFileCounterStore,
    MemoryCounterStore,
    PulseReading,
    PulseSource,
    cancel_and_wait,
    open_source,
)
from twin.core import MeterModel, Snapshot
from twin.mirror.config import MirrorConfig
from twin.mirror.crosscheck import Check, CrossCheck, EdgeMark, Verdict
from twin.mirror.follow import Follow, with_mirror_bits
from twin.mirror.reference import ProfileReference, Reference
from twin.modbus.endpoint import MeterEndpoint
from twin.registers import Identity, RegisterImage, WordOrder, device_identification

log = logging.getLogger(__name__)

#: The counter records' file in the state directory.
COUNTER_FILE: Final = "mirror-counters.json"
#: Points of the registration history kept for the report (older ones are thinned).
MAX_HISTORY: Final = 20_000
#: ``source_mode`` while mirroring a physical meter (register 70).
SOURCE_MODE_MIRROR: Final = 1


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """The cumulative check at one mark (the report's time series)."""

    t_s: float
    counts: int
    registration_pct: float
    bound_pct: float
    class_limit_pct: float
    verdict: Verdict


class Mirror:
    """One mirrored meter. Use as ``async with Mirror(config) as mirror``."""

    def __init__(
        self,
        config: MirrorConfig,
        *,
        source: PulseSource | None = None,
        reference: Reference | None = None,
        clock: Callable[[], float] | None = None,
        store: CounterStore | None = None,
    ) -> None:
        self.config = config
        self.model = MeterModel.parse(config.model)
        self._t0 = time.monotonic()
        self.now: Callable[[], float] = clock or (lambda: time.monotonic() - self._t0)
        self._store = store or self._default_store()
        self._source = source
        self.reference = reference or self._default_reference()
        self.identity = Identity(self.model, config.serial_number, unit_id=config.unit)
        self._word_order = WordOrder(config.word_order)
        self.follow: Follow | None = None
        self.crosscheck: CrossCheck | None = None
        self.stale = False
        self.history: list[HistoryPoint] = []
        self._check = Check(Verdict.UNDECIDED if self.reference else Verdict.NONE)
        self.snapshot: Snapshot | None = None
        self.image: RegisterImage | None = None
        self.endpoint: MeterEndpoint | None = None
        self.listeners: list[Callable[[Mirror], None]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self.readings = 0

    def _default_store(self) -> CounterStore:
        if self.config.state_dir is None:
            return MemoryCounterStore()
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        return JsonFileCounterStore(self.config.state_dir / COUNTER_FILE)

    def _default_reference(self) -> Reference | None:
        cfg = self.config
        if cfg.profile is None:
            return None
        return ProfileReference(
            cfg.load_profile(),
            self.model,
            seed=cfg.profile_seed,
            sample_s=cfg.sample_s,
            offset_s=cfg.profile_offset_s,
            uncertainty_pct=cfg.reference_uncertainty_pct,
        )

    @property
    def source(self) -> PulseSource:
        if self._source is None:
            raise RuntimeError("mirror not started")
        return self._source

    @property
    def check(self) -> Check:
        return self._check

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._source is None:
            self._source = open_source(self.config.source_url, store=self._store, clock=self.now)
        await self._source.start()
        try:
            cfg = self._source.config
            self.follow = Follow(
                wh_per_count=cfg.wh_per_count,
                demand=self.config.demand,
                start_counts=self._source.total_counts,
            )
            if self.reference is not None:
                self.crosscheck = CrossCheck(
                    wh_per_count=cfg.wh_per_count,
                    edge_wh=cfg.kh_wh / 2,
                    reference_pct=self.reference.uncertainty_pct,
                    rolling_counts=self.config.rolling_counts,
                    rolling_s=self.config.rolling_s,
                )
            self.refresh()
            self._tasks.append(asyncio.create_task(self._read_loop(), name="mirror-read"))
            if self.config.refresh_s is not None:
                self._tasks.append(asyncio.create_task(self._refresh_loop(), name="mirror-tick"))
        except BaseException:
            await self._source.stop()
            raise
        log.info(
            "mirroring %s (%s, %g Wh per count) as %s, %s",
            self.source.source_id,
            self.config.source_url,
            cfg.wh_per_count,
            self.identity.serial_number,
            "cross-checked" if self.reference else "follow only",
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, []
        try:
            await cancel_and_wait(tasks)
        finally:
            if self._source is not None:
                await self._source.stop()

    async def _read_loop(self) -> None:
        async for reading in self.source:
            self.feed(reading)

    async def _refresh_loop(self) -> None:
        assert self.config.refresh_s is not None
        while True:
            await asyncio.sleep(self.config.refresh_s)
            self.refresh()

    # ------------------------------------------------------------ readings

    def feed(self, reading: PulseReading) -> None:
        """Count one reading, add its mark to the cross-check, refresh the image."""
        follow = self.follow
        if follow is None:
            raise RuntimeError("mirror not started")
        self.readings += 1
        if reading.event is CounterEvent.STALE:
            self.stale = True
        elif reading.event is CounterEvent.RESUMED or reading.counts:
            self.stale = False
        follow.count(reading.total_counts, reading.at_s)
        if reading.counts > 0 and self.reference is not None and self.crosscheck is not None:
            self._mark(reading)
        self.refresh()

    def _mark(self, reading: PulseReading) -> None:
        reference, check = self.reference, self.crosscheck
        assert reference is not None and check is not None
        reference.advance_to(reading.at_s)
        hi = reference.energy_at(reading.at_s)
        lo = reference.energy_at(reading.at_s - reading.uncertainty_s)
        if hi is None or lo is None:
            log.warning("reference has no history for a mark at %.1f s: new window", reading.at_s)
            check.restart()
            return
        check.add(
            EdgeMark(
                counts=reading.total_counts,
                at_s=reading.at_s,
                uncertainty_s=reading.uncertainty_s,
                model_lo_wh=lo[0],
                model_hi_wh=hi[0],
                apparent_vah=hi[1],
            )
        )
        cumulative = check.cumulative()
        bound = cumulative.bound
        self._record(
            HistoryPoint(
                reading.at_s,
                cumulative.counts,
                cumulative.registration_pct,
                cumulative.bound_pct,
                bound.class_limit_pct if bound else math.nan,
                cumulative.verdict,
            )
        )

    def _record(self, point: HistoryPoint) -> None:
        self.history.append(point)
        if len(self.history) > MAX_HISTORY:
            self.history = self.history[::2]

    # ------------------------------------------------------------ publishing

    def extra(self) -> dict[str, float | int]:
        """Registers 70-78 as the register image takes them."""
        check = self._check
        return {
            "source_mode": SOURCE_MODE_MIRROR,
            "mirror_registration_pct": check.registration_pct,
            "mirror_bound_pct": check.bound_pct,
            "mirror_verdict": int(check.verdict),
            "mirror_pulses": self.follow.total_counts % (1 << 32) if self.follow else 0,
        }

    def refresh(self) -> None:
        """Recompute the verdict and the snapshot at the current time; rebuild the image."""
        follow = self.follow
        if follow is None:
            return
        if self.crosscheck is not None:
            self._check = self.crosscheck.verdict(stale=self.stale)
        else:
            self._check = Check(Verdict.INPUT_STALE if self.stale else Verdict.NONE)
        now = max(self.now(), follow.last_at_s)
        snap = follow.snapshot(now, model=self.model, serial_number=self.identity.serial_number)
        self.snapshot = with_mirror_bits(
            snap, stale=self.stale, outside_class=self._check.verdict is Verdict.OUTSIDE_CLASS
        )
        self.image = RegisterImage.build(
            self.snapshot,
            self.identity,
            word_order=self._word_order,
            sunspec=self.config.sunspec,
            extra=self.extra(),
        )
        if self.endpoint is None:
            self.endpoint = MeterEndpoint(self.image, device_identification(self.identity))
        else:
            self.endpoint.set_image(self.image)
        for listener in self.listeners:
            listener(self)
