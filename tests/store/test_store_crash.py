"""Acceptance: SIGKILL while committing every block loses nothing it reported.

A child process (store_crash_child.py) runs a meter at constant load and commits a
fleet of identical rows after every block (fsynced every 20 ms, in the WAL without
fsync between, as the twin's steps are). We kill it with SIGKILL after a few checkpoints:
in some rounds at a random moment, in others 0-8 ms after it announces a save
(`SAVING`), so the kill lands inside the checkpoint (encoding, mid-transaction or just
after the commit: about 2 in 3 aimed kills in a 30-round trial). Then we check the
store: `PRAGMA integrity_check` is ok; the restored energy is at least the last
checkpoint the child reported and at most the energy it had reached (in fact exactly
one of the states it reported); every row of the fleet holds the same state (one
transaction, never torn). The next child restarts from the store, as the twin would,
so the rounds chain.
"""

from __future__ import annotations

import os
import queue
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import pytest

from twin.store.sqlite import Store

CHILD = Path(__file__).with_name("store_crash_child.py")
FLEET = 200  # rows per checkpoint: a transaction of a few ms, a target worth aiming at
ROUNDS = 8

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")


def _drain(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    # A thread drains the pipe so the child never blocks on a full pipe buffer.
    for line in stream:
        if line.endswith("\n"):  # a torn last line (killed mid-write) is not a report
            lines.put(line.rstrip("\n"))
    lines.put(None)


def _run_and_kill(db: Path, checkpoints_before_kill: int, delay_s: float, aim: bool) -> list[str]:
    """Run the child; after N checkpoints wait delay_s (aim: for the next SAVING) and kill."""
    with subprocess.Popen(
        [sys.executable, str(CHILD), str(db), str(FLEET)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_drain, args=(proc.stdout, lines), daemon=True)
        reader.start()
        seen: list[str] = []
        checkpoints = 0
        deadline = time.monotonic() + 10.0
        try:
            while True:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
                if line is None:
                    raise AssertionError(f"child exited early: {proc.stderr.read()}")
                seen.append(line)
                checkpoints += line.startswith("CKPT ")
                if checkpoints >= checkpoints_before_kill and (
                    not aim or line.startswith("SAVING ")
                ):
                    break
            time.sleep(delay_s)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=5)
        reader.join(timeout=5)
        assert proc.returncode == -signal.SIGKILL
        while (line := lines.get(timeout=1)) is not None:
            seen.append(line)
    return seen


def _values(seen: list[str], tag: str) -> list[int]:
    return [int(s.split()[1]) for s in seen if s.startswith(tag + " ")]


def test_sigkill_during_checkpoints_keeps_last_reported_checkpoint(tmp_path: Path) -> None:
    db = tmp_path / "meters.sqlite3"
    rng = random.Random(20240611)  # varied but reproducible kill moments
    restored_uj = 0
    for round_no in range(ROUNDS):
        aim = round_no % 2 == 1
        delay_s = rng.uniform(0.0, 0.008) if aim else rng.uniform(0.0, 0.03)
        seen = _run_and_kill(db, rng.randint(3, 10), delay_s, aim)
        where = f"round {round_no} (aimed={aim})"
        # The child restored what the previous round left (the twin's restart path).
        assert seen[0] == f"START {restored_uj}", where
        energies, ckpts = _values(seen, "ENERGY"), _values(seen, "CKPT")
        assert len(ckpts) >= 3 and energies == sorted(energies) and energies[0] > restored_uj

        conn = sqlite3.connect(db)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)], where
        rows = conn.execute("SELECT count(*), count(DISTINCT nv_json) FROM meters").fetchone()
        conn.close()
        assert rows == (FLEET, 1), f"{where}: fleet rows torn: {rows}"

        with Store(db) as store:
            nv = store.load("S0000")
        assert nv is not None
        restored_uj = nv.energy_delivered_uj
        assert ckpts[-1] <= restored_uj <= energies[-1], where
        assert restored_uj in energies, where  # a state the child really reached
