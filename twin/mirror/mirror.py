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
- when a reference is set and the reading counted edges, the reading waits until the
  reference can answer for its time (a profile is driven up to it at once; a
  reference meter must have been polled past it), then an
  :class:`~twin.mirror.crosscheck.EdgeMark` is added: the reference's energy at both
  ends of the interval the edge is known in. A mark the reference has no history
  for (a very long outage) starts a new window;
- a stale reading sets the verdict to input stale until the source answers again.

Time is mirror time: seconds since the mirror first started (monotonic unless a
clock is given; with a state directory it goes on across a restart from the
wall-clock origin saved in :mod:`.state`). Polled sources stamp readings on it; a
virtual source carries the time its sink was given, which a test makes the
stand-in's meter time. The reference plays its profile from mirror time 0 (plus an
offset): start the mirror when the rig starts the profile.

Restarts: the source's counts are in the counter store; demand and maximum demand
in the twin's store (``nv``, :meth:`Mirror.nv_state`); the cross-check's marks and
time origin in :mod:`.state`, so the cumulative window goes on (unless the source,
the reference or the counts no longer match it, or the reference is not
``persistent``: then a new window starts).

The published state (:meth:`Mirror.snapshot`, :meth:`Mirror.extra`): the follow
snapshot with status bits 14/15, registers 70-78 (source_mode 1, registration, bound,
verdict, pulses) and the twin's health (79); :meth:`refresh` rebuilds :attr:`image`
(after each reading, every ``refresh_s``) and calls the ``listeners`` (the twin's
meter serves it: :mod:`.part`). :attr:`history` keeps a point per mark (the report).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
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
from twin.core import MeterModel, NvState, Snapshot
from twin.mirror.config import MirrorConfig
from twin.mirror.crosscheck import Check, CrossCheck, EdgeMark, HistoryPoint, Verdict
from twin.mirror.follow import Follow, with_mirror_bits
from twin.mirror.modbus_reference import ModbusMeterReference
from twin.mirror.reference import ProfileReference, Reference
from twin.mirror.state import KEEP_MARKS, STATE_FILE, MirrorState, load_state, save_state
from twin.registers import Identity, RegisterImage, WordOrder

log = logging.getLogger(__name__)

#: The counter records' file in the state directory.
COUNTER_FILE: Final = "mirror-counters.json"
#: Points of the registration history kept for the report (older ones are thinned).
MAX_HISTORY: Final = 20_000
#: ``source_mode`` while mirroring a physical meter (register 70).
SOURCE_MODE_MIRROR: Final = 1
#: Readings waiting for the reference (a reference meter's poll); older ones are dropped.
MAX_PENDING: Final = 10_000
#: Wall seconds between saves of the cross-check state (and at every stop).
SAVE_INTERVAL_S: Final = 1.0


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
        nv: NvState | None = None,
    ) -> None:
        self.config = config
        self.model = MeterModel.parse(config.model)
        self._state_path = None if config.state_dir is None else config.state_dir / STATE_FILE
        self._saved = load_state(self._state_path) if self._state_path is not None else None
        self.epoch_unix_s = self._saved.epoch_unix_s if self._saved else time.time()
        if clock is None:  # mirror time goes on across a restart (the rig did not stop)
            t0 = time.monotonic() - max(0.0, time.time() - self.epoch_unix_s)
            clock = lambda: time.monotonic() - t0  # noqa: E731
        self.now: Callable[[], float] = clock
        self._store = store or self._default_store()
        self._source = source
        self._nv = nv
        self.reference = reference or self._default_reference()
        self.identity = Identity(self.model, config.serial_number, unit_id=config.unit)
        self._word_order = WordOrder(config.word_order)
        self.follow: Follow | None = None
        self.crosscheck: CrossCheck | None = None
        self.stale = False
        self.health = 0  # twin_health (register 79): the twin's conditions, shown in the image
        self.history: list[HistoryPoint] = []
        self._check = Check(Verdict.UNDECIDED if self.reference else Verdict.NONE)
        self._pending: deque[PulseReading] = deque(maxlen=MAX_PENDING)
        self._saved_at = -math.inf
        self._unsaved = False  # marks added since the last save
        self.continued = False  # the cross-check window goes on from before a restart
        self.snapshot: Snapshot | None = None
        self.image: RegisterImage | None = None
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
        if cfg.reference_meter is not None:
            return ModbusMeterReference(cfg.reference_meter, clock=self.now)
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
    def reference_key(self) -> str:
        """What the marks' counts and model energies are of (a saved window must match)."""
        c = self.config
        if c.reference_meter is not None:
            of = c.reference_meter.text
        else:
            of = f"{c.profile} seed={c.profile_seed} +{c.profile_offset_s}s /{c.sample_s}s"
        return f"{c.source_url} | {c.model} | {of}"

    @property
    def source(self) -> PulseSource:
        if self._source is None:
            raise RuntimeError("mirror not started")
        return self._source

    @property
    def reference_down(self) -> bool:
        """True while a reference meter does not answer (a profile never goes down)."""
        return isinstance(self.reference, ModbusMeterReference) and bool(self.reference.last_error)

    def set_health(self, bits: int) -> None:
        """The twin's conditions into register 79 of the served image."""
        if bits != self.health:
            self.health = bits
            self.refresh()

    @property
    def check(self) -> Check:
        return self._check

    def nv_state(self) -> NvState:
        """What the twin's durable store keeps of the followed meter (demand, maximum)."""
        return self.follow.nv_state() if self.follow is not None else NvState()

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
                nv=self._nv,
            )
            if self.reference is not None:
                self.crosscheck = CrossCheck(
                    wh_per_count=cfg.wh_per_count,
                    edge_wh=cfg.kh_wh / 2,
                    reference_pct=self.reference.uncertainty_pct,
                    rolling_counts=self.config.rolling_counts,
                    rolling_s=self.config.rolling_s,
                )
                self._continue_window()
                await self.reference.start(self.reference_updated)
            self._save(force=True)
            self.refresh()
            self._tasks.append(asyncio.create_task(self._read_loop(), name="mirror-read"))
            if self.config.refresh_s is not None:
                self._tasks.append(asyncio.create_task(self._refresh_loop(), name="mirror-tick"))
        except BaseException:
            await self._stop_parts()
            raise
        log.info(
            "mirroring %s (%s, %g Wh per count) as %s, %s",
            self.source.source_id,
            self.config.source_url,
            cfg.wh_per_count,
            self.identity.serial_number,
            ("cross-checked, window continued" if self.continued else "cross-checked")
            if self.reference
            else "follow only",
        )
        return self

    def _continue_window(self) -> None:
        saved, check, reference = self._saved, self.crosscheck, self.reference
        if saved is None or not saved.marks or check is None or reference is None:
            return
        if saved.reference != self.reference_key or not reference.persistent:
            log.info("mirror restarted with another reference: a new cross-check window")
        elif saved.marks[-1].counts > self.source.total_counts:
            log.warning("saved marks are ahead of the source's counts: a new window")
        else:
            check.restore(list(saved.marks))
            self.continued = True

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        tasks, self._tasks = self._tasks, []
        try:
            await cancel_and_wait(tasks)
            self._save(force=True)
        finally:
            await self._stop_parts()

    async def _stop_parts(self) -> None:
        try:
            if self.reference is not None:
                await self.reference.stop()
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
            self._save()

    @property
    def pending(self) -> int:
        """Readings waiting for the reference to answer for their time."""
        return len(self._pending)

    def reference_updated(self) -> None:
        """The reference can answer further (a poll): add the marks waiting for it."""
        if self._pending:
            self._flush()
            self.refresh()

    def _save(self, *, force: bool = False) -> None:
        path, check = self._state_path, self.crosscheck
        now = time.monotonic()
        if path is None or not (
            force or (self._unsaved and now - self._saved_at >= SAVE_INTERVAL_S)
        ):
            return
        marks = tuple(check.saved(KEEP_MARKS)) if check is not None else ()
        save_state(path, MirrorState(self.epoch_unix_s, self.reference_key, marks))
        self._saved_at, self._unsaved = now, False

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
        if reading.counts > 0 and self.crosscheck is not None:
            self._pending.append(reading)
            self._flush()
        self.refresh()

    def _flush(self) -> None:
        """Add the marks of the readings the reference can answer for, in order."""
        reference = self.reference
        assert reference is not None
        while self._pending and reference.ready(self._pending[0].at_s):
            self._mark(self._pending.popleft())
        self._save()

    def _mark(self, reading: PulseReading) -> None:
        reference, check = self.reference, self.crosscheck
        assert reference is not None and check is not None
        energy = reference.mark_energy(reading.at_s - reading.uncertainty_s, reading.at_s)
        if energy is None:
            log.warning("reference has no history for a mark at %.1f s: new window", reading.at_s)
            check.restart()
            return
        check.add(
            EdgeMark(
                counts=reading.total_counts,
                at_s=reading.at_s,
                uncertainty_s=reading.uncertainty_s,
                model_lo_wh=energy[0],
                model_hi_wh=energy[1],
                apparent_vah=energy[2],
            )
        )
        self._unsaved = True
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
        """Registers 70-79 as the register image takes them."""
        check = self._check
        return {
            "source_mode": SOURCE_MODE_MIRROR,
            "mirror_registration_pct": check.registration_pct,
            "mirror_bound_pct": check.bound_pct,
            "mirror_verdict": int(check.verdict),
            "mirror_pulses": self.follow.total_counts % (1 << 32) if self.follow else 0,
            "twin_health": self.health,
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
        for listener in self.listeners:
            listener(self)
