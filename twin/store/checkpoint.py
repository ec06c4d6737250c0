"""When to checkpoint the fleet, and one checkpoint off the event loop.

Theory of operation
-------------------
:class:`Checkpointer` decides when a checkpoint is due (its caller passes the clock
reading) and writes it through a :class:`~twin.store.sqlite.Store`; a failed save
keeps the timer and is retried every `RETRY_S`. :func:`checkpoint_in_thread` is what
the runtime's tick calls: the save runs in a worker thread, and a failing store (a
full disk, a read-only or immutable file) is one error line when it starts and one
line when it recovers, never a traceback per tick; the meters serve on from memory.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
from collections.abc import Callable
from typing import Final

from twin.errors import StoreError
from twin.store.sqlite import Items, Store

log = logging.getLogger(__name__)

MIN_INTERVAL_S: Final = 0.01
MAX_INTERVAL_S: Final = 3600.0
#: After a failed checkpoint, wait this long (at most the interval) before retrying.
RETRY_S: Final = 1.0


class Checkpointer:
    """Decides WHEN to checkpoint; the async runtime calls it on every tick.

    Pure timing: the caller passes its own clock reading (`now_s`, e.g. loop.time()),
    so tests drive it with a manual clock. `items` is a callable so the fleet's
    NvStates are only gathered when a checkpoint is actually due.

    Thread-safe for the runtime's pattern (`due()` on the loop, `checkpoint()` in a
    worker thread): checkpoints are serialised, and `due()` is False while one runs, so
    a slow fsync does not queue a second, overlapping save.

    A failed checkpoint (a full disk, a read-only filesystem) keeps the timer, so the
    save is due again, but `due()` waits `RETRY_S` (or the interval, if shorter) after
    the failure: a failing disk is retried once a second, not every tick. `error` holds
    the failure in force (None once a checkpoint succeeds again), `failures` counts
    the failed attempts since the last success, `failed_since_s` is when they began.
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
        self.last_checkpoint_s: float | None = None
        self.checkpoints = 0
        self._lock = threading.Lock()  # serialises checkpoints
        self._count_lock = threading.Lock()  # guards _in_flight (+= is not atomic)
        self._in_flight = 0
        self.error: StoreError | None = None
        self.failures = 0
        self.failed_at_s: float | None = None  # the last failed attempt
        self.failed_since_s: float | None = None  # the first of this run of failures

    def due(self, now_s: float) -> bool:
        if self._in_flight:
            return False
        failed = self.failed_at_s
        if failed is not None and failed <= now_s < failed + min(RETRY_S, self.interval_s):
            return False
        last = self.last_checkpoint_s
        # A clock that went backwards (a new manual clock) counts as due, not as "wait
        # until it catches up", which could postpone checkpoints indefinitely.
        return last is None or now_s < last or now_s - last >= self.interval_s

    def maybe_checkpoint(self, now_s: float, items: Callable[[], Items]) -> bool:
        """Checkpoint if an interval has passed since the last one (the first call does).

        Returns True when it wrote. On StoreError the timer is not reset, so the next
        tick retries.
        """
        if not math.isfinite(now_s):
            raise ValueError(f"checkpoint now_s: {now_s!r} must be finite")
        if not self.due(now_s):
            return False
        self.checkpoint(items, now_s=now_s)
        return True

    def checkpoint(self, items: Callable[[], Items] | Items, now_s: float | None = None) -> None:
        """Checkpoint now (clean shutdown, or a forced save); resets the timer if now_s."""
        with self._count_lock:  # before the lock: due() says no even while we wait for it
            self._in_flight += 1
        try:
            with self._lock:
                try:
                    self.store.save_many(items() if callable(items) else items)
                except StoreError as exc:
                    self.error, self.failures = exc, self.failures + 1
                    if now_s is not None:
                        self.failed_at_s = now_s
                        if self.failed_since_s is None:
                            self.failed_since_s = now_s
                    raise
                self.checkpoints += 1
                self.error, self.failures = None, 0
                self.failed_at_s = self.failed_since_s = None
                if now_s is not None:
                    self.last_checkpoint_s = now_s
        finally:
            with self._count_lock:
                self._in_flight -= 1


async def checkpoint_in_thread(cp: Checkpointer, items: Items, now_s: float) -> None:
    """One checkpoint in a worker thread; a failure is logged (once per run of
    failures) and kept in ``cp.error``, not raised."""
    failing_since = cp.failed_since_s
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, lambda: cp.checkpoint(items, now_s=now_s))
    except StoreError as exc:
        if cp.failures == 1:
            log.error("%s; serving continues from memory, retrying every %g s", exc, RETRY_S)
        return
    if failing_since is not None:
        log.warning(
            "store %s: checkpoints succeed again after %.1f s of failures",
            cp.store.path,
            now_s - failing_since,
        )
