"""When to checkpoint: the runtime asks every tick, a worker thread writes.

Pure timing around a :class:`~twin.store.sqlite.Store`: the caller passes its own clock
reading, so tests drive it with a manual clock.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import Final

from twin.store.sqlite import Items, Store

MIN_INTERVAL_S: Final = 0.01
MAX_INTERVAL_S: Final = 3600.0


class Checkpointer:
    """Decides WHEN to checkpoint; the async runtime calls it on every tick.

    Pure timing: the caller passes its own clock reading (`now_s`, e.g. loop.time()),
    so tests drive it with a manual clock. `items` is a callable so the fleet's
    NvStates are only gathered when a checkpoint is actually due.

    Thread-safe for the runtime's pattern (`due()` on the loop, `checkpoint()` in a
    worker thread): checkpoints are serialised, and `due()` is False while one runs, so
    a slow fsync does not queue a second, overlapping save.
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

    def due(self, now_s: float) -> bool:
        if self._in_flight:
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
                self.store.save_many(items() if callable(items) else items)
                self.checkpoints += 1
                if now_s is not None:
                    self.last_checkpoint_s = now_s
        finally:
            with self._count_lock:
                self._in_flight -= 1
