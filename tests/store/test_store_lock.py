"""One writer per store: a second opener of the same state dir is refused, by pid.

Two twins on one state dir both restored MM00000001 and overwrote each other's
checkpoints, so stored energy went backwards. The store now holds an exclusive flock
on `meters.sqlite3.lock` for its life; these tests check the refusal (in-process and
from another process), that the first holder is unaffected, that close and process
death (SIGKILL) release it, and the lock-free read-only view of a held store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from twin.core import NvState
from twin.errors import StoreError
from twin.store.sqlite import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "meters.sqlite3"


def test_second_store_on_the_same_file_is_refused_naming_the_holder(db: Path) -> None:
    first = Store(db)
    first.save("MM00000001", NvState(energy_delivered_uj=100))
    with pytest.raises(StoreError) as info:
        Store(db)
    msg = str(info.value)
    assert f"state dir {db.parent} is in use by pid {os.getpid()}" in msg
    assert str(db) + ".lock" in msg and "stop it or use another --state-dir" in msg
    assert "\n" not in msg
    # The holder is unaffected: it still reads and writes its rows.
    first.save("MM00000001", NvState(energy_delivered_uj=200))
    assert first.load("MM00000001") == NvState(energy_delivered_uj=200)
    first.close()
    first.close()  # idempotent
    with Store(db) as again:  # released on close
        assert again.load("MM00000001") == NvState(energy_delivered_uj=200)
    with Store(db):  # and by the context manager
        pass


def test_read_only_view_of_a_held_store(db: Path) -> None:
    with pytest.raises(StoreError, match="no such store file"):
        Store(db, read_only=True)
    with Store(db) as writer:
        writer.save("A", NvState(energy_delivered_uj=7))
        with Store(db, read_only=True) as reader:
            assert reader.load("A") == NvState(energy_delivered_uj=7)
            assert reader.serials() == ["A"]
            with pytest.raises(StoreError, match="read-only"):
                reader.save("A", NvState(energy_delivered_uj=8))
        writer.save("A", NvState(energy_delivered_uj=9))  # the reader took no lock
    with Store(db, read_only=True) as reader:
        assert reader.load("A") == NvState(energy_delivered_uj=9)


_HOLDER = """
import sys, time
from twin.store.sqlite import Store
s = Store(sys.argv[1])
print("READY", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_another_process_holds_the_lock_until_it_dies(db: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "READY\n"
            with pytest.raises(StoreError, match=f"in use by pid {proc.pid} "):
                Store(db)
        finally:
            proc.send_signal(signal.SIGKILL)  # no clean close: the kernel drops the lock
            proc.wait(timeout=5)
    with Store(db) as s:
        assert s.serials() == []
    assert db.with_name(db.name + ".lock").read_text() == f"{os.getpid()}\n"
