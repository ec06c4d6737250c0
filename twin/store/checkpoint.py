"""Saving the fleet: every step committed, durable every interval, the SQL off the event loop.

Theory of operation
-------------------
The runtime calls :func:`commit_in_thread` after every step of the fleet (its tick),
and publishes the step to clients (registers, MQTT, HTTP, pulse edges) only once that
commit has landed (:mod:`twin.runtime.twin`). :class:`Checkpointer` decides what
each commit writes and how:

- the rows of the meters whose `NvState` changed since the last commit that landed,
  in one transaction (a meter at rest costs nothing);
- a step's commit goes to the WAL without fsync: a process crash keeps it;
- once ``interval_s`` of the caller's clock (wall seconds) has passed since the last
  durable save, the commit is durable (fsynced): a power cut keeps it too. A clean
  stop saves durably (:meth:`Checkpointer.checkpoint`);
- the rows' text is made on the event loop in slices of a few ms, and the worker
  thread only runs SQLite, which releases the GIL (:func:`commit_in_thread` says why).

So a process crash (SIGKILL, the OOM killer, a bug) loses at most the step in flight:
one tick of meter time (``tick_s x speed``), which no client has seen. A power cut or
an OS crash loses at most the commits since the last durable one: ``interval_s x
speed`` of meter time plus that step, some of which clients may have read.

Commits are serialised and never overlap: :meth:`Checkpointer.due` is False while one
is in flight. A failing store (a full disk, a read-only or immutable file) is one
error line when it starts and one line when it recovers, never a traceback per step;
while it fails, a commit is tried once every ``RETRY_S`` (at most the interval), and
the meters serve on from memory, published as if the commit had landed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Final

from twin.core import NvState
from twin.errors import StoreError
from twin.store.sqlite import Items, Row, Store

log = logging.getLogger(__name__)

MIN_INTERVAL_S: Final = 0.01
MAX_INTERVAL_S: Final = 3600.0
#: After a failed save, wait this long (at most the interval) before trying again.
RETRY_S: Final = 1.0
#: Wall time rows are prepared on the event loop before it answers requests again,
#: looked at every ``_ROWS_PER_LOOK`` rows (~10 us each): a third of the stepping's
#: 3 ms, as a turn of the loop often runs a stepping chunk too.
PREPARE_YIELD_AFTER_S: Final = 0.001
_ROWS_PER_LOOK: Final = 25

#: A changed meter: its serial, its NvState and the row that saves it.
Prepared = tuple[str, NvState, Row]


class Checkpointer:
    """Commits the fleet's changed rows; makes them durable every ``interval_s``.

    Pure timing: the caller passes its own clock reading (``now_s``, e.g.
    loop.time()), so tests drive it with a manual clock. ``items`` may be a callable,
    so the fleet's NvStates are gathered only when a commit actually runs.

    Thread-safe for the runtime's pattern (``due()`` on the loop, ``commit()`` in a
    worker thread): commits are serialised, and ``due()`` is False while one is in
    flight, so a slow fsync does not queue a second, overlapping commit.

    A failed save keeps the durable timer (the next commit is durable again), and
    ``due()`` waits ``RETRY_S`` (or the interval, if shorter) after it. ``error`` holds
    the failure in force (None once a save lands again), ``failures`` counts the failed
    attempts since the last success, ``failed_since_s`` is when they began.
    ``commits`` counts the saves that landed, ``checkpoints`` the durable ones among
    them, ``rows`` the rows they wrote.
    """

    def __init__(self, store: Store, interval_s: float) -> None:
        if not (
            isinstance(interval_s, int | float)
            and math.isfinite(interval_s)
            and MIN_INTERVAL_S <= interval_s <= MAX_INTERVAL_S
        ):
            raise ValueError(
                f"checkpoint interval_s: {interval_s!r} is out of range "
                f"({MIN_INTERVAL_S}..{MAX_INTERVAL_S} s)"
            )
        self.store = store
        self.interval_s = float(interval_s)
        self.last_durable_s: float | None = None
        self.commits = 0
        self.checkpoints = 0
        self.rows = 0
        self._saved: dict[str, NvState] = {}  # what the store holds, by serial
        self._lock = threading.Lock()  # serialises saves
        self._count_lock = threading.Lock()  # guards _in_flight (+= is not atomic)
        self._in_flight = 0
        self.error: StoreError | None = None
        self.failures = 0
        self.failed_at_s: float | None = None  # the last failed attempt
        self.failed_since_s: float | None = None  # the first of this run of failures

    def due(self, now_s: float) -> bool:
        """May a commit start now? Not while one is in flight, nor within the retry
        wait after a failure."""
        if self._in_flight:
            return False
        failed = self.failed_at_s
        return failed is None or not failed <= now_s < failed + min(RETRY_S, self.interval_s)

    def durable_due(self, now_s: float) -> bool:
        """Has an interval passed since the last durable save (or was there none)?"""
        last = self.last_durable_s
        # A clock that went backwards (a new manual clock) counts as due, not as "wait
        # until it catches up", which could postpone durability indefinitely.
        return last is None or now_s < last or now_s - last >= self.interval_s

    def commit(
        self,
        items: Callable[[], Items] | Items,
        now_s: float | None = None,
        *,
        durable: bool | None = None,
    ) -> int:
        """Save the rows that changed since the last save in one transaction; returns
        how many. Durable if ``durable``, or (None) if the interval has passed at
        ``now_s`` (always without ``now_s``). Raises StoreError (kept in ``error``)."""
        if now_s is not None and not math.isfinite(now_s):
            raise ValueError(f"checkpoint now_s: {now_s!r} must be finite")
        with self._count_lock:  # before the lock: due() says no even while we wait for it
            self._in_flight += 1
        try:
            with self._lock:
                rows = self.prepare(items() if callable(items) else items)
                return self._save(rows, now_s, durable)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def prepare(self, items: Items) -> list[Prepared]:
        """The store rows of the items that changed since the last save (the Python
        work of a commit: :func:`commit_in_thread` does it on the event loop)."""
        now_s, saved, store = time.time(), self._saved, self.store
        return [(s, nv, store.row(s, nv, now_s)) for s, nv in items if saved.get(s) != nv]

    def commit_rows(
        self, rows: list[Prepared], now_s: float, *, durable: bool | None = None
    ) -> int:
        """As :meth:`commit`, of rows made by :meth:`prepare` (in a worker thread: SQLite
        runs without the GIL)."""
        if not math.isfinite(now_s):
            raise ValueError(f"checkpoint now_s: {now_s!r} must be finite")
        with self._count_lock:
            self._in_flight += 1
        try:
            with self._lock:
                return self._save(rows, now_s, durable)
        finally:
            with self._count_lock:
                self._in_flight -= 1

    def _save(self, rows: list[Prepared], now_s: float | None, durable: bool | None) -> int:
        if durable is None:
            durable = now_s is None or self.durable_due(now_s)
        try:
            self.store.save_rows([row for _, _, row in rows], durable=durable)
        except StoreError as exc:
            self.error, self.failures = exc, self.failures + 1
            if now_s is not None:
                self.failed_at_s = now_s
                if self.failed_since_s is None:
                    self.failed_since_s = now_s
            raise
        self._saved.update((s, nv) for s, nv, _ in rows)
        self.commits, self.rows = self.commits + 1, self.rows + len(rows)
        if durable:
            self.checkpoints += 1
            if now_s is not None:
                self.last_durable_s = now_s
        self.error, self.failures = None, 0
        self.failed_at_s = self.failed_since_s = None
        return len(rows)

    def checkpoint(self, items: Callable[[], Items] | Items) -> None:
        """A durable save now (a clean stop, a forced save); the timer is untouched."""
        self.commit(items, durable=True)


async def commit_in_thread(cp: Checkpointer, items: Items, now_s: float) -> None:
    """One commit (durable when due): its rows made on the event loop, yielding to it
    every ``PREPARE_YIELD_AFTER_S``, then saved in a worker thread. A failure is logged
    once per run of failures and kept in ``cp.error``, not raised.

    Why split: a thread that encodes rows holds the GIL for tens of ms at a time, and
    the event loop, which gives up the GIL at every poll for I/O, then waits up to the
    interpreter's switch interval (5 ms) each time it wants it back: requests were
    answered in steps of 5 ms while a commit ran. SQLite runs without the GIL."""
    failing_since = cp.failed_since_s
    items = list(items)
    rows: list[Prepared] = []
    last = time.perf_counter()
    for start in range(0, len(items), _ROWS_PER_LOOK):
        rows += cp.prepare(items[start : start + _ROWS_PER_LOOK])
        if time.perf_counter() - last > PREPARE_YIELD_AFTER_S:
            await asyncio.sleep(0)
            last = time.perf_counter()
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, lambda: cp.commit_rows(rows, now_s))
    except StoreError as exc:
        if cp.failures == 1:
            log.error("%s; serving continues from memory, retrying every %g s", exc, RETRY_S)
        return
    if failing_since is not None:
        log.warning(
            "store %s: saving works again after %.1f s of failures",
            cp.store.path,
            now_s - failing_since,
        )
