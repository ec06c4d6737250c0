"""The checkpointer: every step's changed rows committed, durable once per interval."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from twin.core import NvState
from twin.errors import StoreError
from twin.store import Checkpointer, Store, commit_in_thread, encode_row


def _nv(energy_uj: int = 0, **kw: object) -> NvState:
    return NvState(energy_delivered_uj=energy_uj, **kw)  # type: ignore[arg-type]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "meters.sqlite3"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db) as s:
        yield s


def _energy_in_database_file(db: Path, serial: str) -> int | None:
    """The energy a copy of the database file alone holds, without its WAL: what the
    last WAL checkpoint (fsync) wrote, i.e. what a power cut at worst falls back to."""
    copy = db.with_name("copy.sqlite3")
    shutil.copyfile(db, copy)
    conn = sqlite3.connect(copy)
    try:
        row = conn.execute("SELECT nv_json FROM meters WHERE serial = ?", (serial,)).fetchone()
    finally:
        conn.close()
    return None if row is None else int(json.loads(row[0])["energy_delivered_uj"])


@pytest.mark.parametrize("interval_s", [0, -1, 0.001, 3601, math.nan, math.inf, "1", None])
def test_checkpoint_interval_is_validated(store: Store, interval_s: object) -> None:
    with pytest.raises(ValueError, match="interval_s"):
        Checkpointer(store, interval_s)  # type: ignore[arg-type]


def test_every_step_is_committed_and_durable_once_per_interval(db: Path, store: Store) -> None:
    cp = Checkpointer(store, 1.0)
    durable_at: list[float] = []
    durable_uj = None
    for step in range(31):  # 0.0 .. 3.0 s in 0.1 s ticks, the energy rising each tick
        now_s = 100.0 + step / 10
        assert cp.due(now_s)
        before = cp.checkpoints
        assert cp.commit([("A", _nv(step))], now_s) == 1
        if cp.checkpoints > before:
            durable_at.append(now_s)
            durable_uj = step
        assert store.load("A") == _nv(step)  # every step is committed,
        assert _energy_in_database_file(db, "A") == durable_uj  # the database: the durable
    assert cp.commits == cp.rows == 31
    # The first tick is durable, then one in each 1.0 s (float ticks: 100.0+1.0 may land late).
    assert durable_at[0] == 100.0 and 3 <= len(durable_at) == cp.checkpoints <= 4
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(durable_at))
    assert cp.last_durable_s == durable_at[-1]


def test_only_changed_rows_are_written(store: Store) -> None:
    cp = Checkpointer(store, 10.0)
    fleet = {"A": _nv(1), "B": _nv(2), "C": _nv(3)}
    assert cp.commit(list(fleet.items()), 0.0) == 3
    assert cp.commit(list(fleet.items()), 0.1) == 0  # a fleet at rest costs nothing
    fleet["B"] = _nv(20)
    assert cp.commit(lambda: list(fleet.items()), 0.2) == 1
    assert [store.load(s) for s in "ABC"] == [_nv(1), _nv(20), _nv(3)]
    assert cp.commits == 3 and cp.rows == 4


def test_durable_boundaries_and_clock_reset(store: Store) -> None:
    cp = Checkpointer(store, 0.5)
    assert cp.durable_due(10.0)
    cp.commit([("A", _nv(1))], 10.0)
    assert not cp.durable_due(10.25)
    assert cp.durable_due(10.5)  # exactly one interval later
    cp.commit([("A", _nv(2))], 10.5)
    assert cp.last_durable_s == 10.5 and cp.checkpoints == 2
    assert cp.durable_due(1.0)  # the clock went backwards: due, the timer restarts
    with pytest.raises(ValueError, match="now_s"):
        cp.commit([("A", _nv(3))], math.nan)


def test_forced_checkpoint_is_durable_and_keeps_the_timer(db: Path, store: Store) -> None:
    cp = Checkpointer(store, 5.0)
    cp.commit([("A", _nv(1))], 3.0)
    cp.commit([("A", _nv(2))], 4.0)  # a step: committed, not yet in the database file
    assert store.load("A") == _nv(2) and _energy_in_database_file(db, "A") == 1
    cp.checkpoint([("A", _nv(2))])  # nothing changed: it still makes the step durable
    assert _energy_in_database_file(db, "A") == 2
    assert cp.last_durable_s == 3.0 and cp.checkpoints == 2


def test_a_failure_keeps_the_timer_retries_once_a_second_and_rewrites(db: Path) -> None:
    s = Store(db)
    cp = Checkpointer(s, 5.0)
    cp.commit([("A", _nv(1)), ("B", _nv(1))], 3.0)
    s.close()
    with pytest.raises(StoreError, match="saving failed"):
        cp.commit([("A", _nv(3)), ("B", _nv(1))], 9.0)
    assert cp.last_durable_s == 3.0 and cp.checkpoints == 1  # the timer is kept
    assert cp.failures == 1 and cp.error is not None and "saving failed" in str(cp.error)
    assert not cp.due(9.5)  # a failing store is retried once a second, not every step
    assert cp.due(10.0)
    cp.store = Store(db)  # the store is back (the real one recovers in place)
    try:
        assert cp.commit([("A", _nv(3)), ("B", _nv(1))], 10.0) == 1  # the failed row again
        assert cp.error is None and cp.failures == 0 and cp.failed_since_s is None
        assert cp.store.load("A") == _nv(3) and cp.checkpoints == 2
    finally:
        cp.store.close()


def test_a_commit_in_a_worker_thread_is_not_due_twice(store: Store) -> None:
    """The runtime's pattern: due() on the event loop, commit() in a worker thread."""
    cp = Checkpointer(store, 1.0)
    entered, release = threading.Event(), threading.Event()

    def slow_items() -> list[tuple[str, NvState]]:
        entered.set()
        assert release.wait(5)  # an fsync that takes its time
        return [("A", _nv(1))]

    assert cp.due(0.0)
    worker = threading.Thread(target=cp.commit, args=(slow_items, 0.0))
    worker.start()
    assert entered.wait(5)
    assert not cp.due(5.0)  # in flight: a second commit must not be queued
    release.set()
    worker.join(5)
    assert store.load("A") == _nv(1) and cp.commits == 1
    assert cp.due(0.5) and not cp.durable_due(0.5) and cp.durable_due(1.0)


def test_row_text_is_canonical_json_of_to_dict() -> None:
    nv = _nv(2**70, pulse_offsets=(1, 2, 3), demand_recent_w=(0.1 + 0.2, 5.0), powered=True)
    expected = json.dumps(nv.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)
    assert encode_row("A", nv) == expected


async def test_commit_in_thread_saves_the_changed_rows_it_prepared(store: Store) -> None:
    cp = Checkpointer(store, 10.0)
    items = [(f"MM{i:08d}", _nv(i)) for i in range(300)]  # several slices of prepare
    await commit_in_thread(cp, items, 0.0)
    assert (cp.commits, cp.rows, cp.checkpoints) == (1, 300, 1)  # the first save is durable
    assert store.load("MM00000299") == _nv(299)
    items[7] = ("MM00000007", _nv(1_000))
    await commit_in_thread(cp, items, 1.0)  # within the interval: in the WAL only
    assert (cp.commits, cp.rows, cp.checkpoints) == (2, 301, 1)  # only the changed row
    assert store.load("MM00000007") == _nv(1_000)
    assert cp.prepare(items) == []  # nothing changed since
