"""A full disk and an unwritable store under a running twin, on a real small ext4.

The store reuses its write-ahead log from the start after every durable save (a passive
WAL checkpoint) and after a step's commit that failed, so a fleet's commits need no
new disk blocks once the WAL has grown to a checkpoint interval's worth: a disk that
fills up under a running twin does not stop them. A save that does need space (new
meters) is refused as "disk full" naming the file, and works again once space
returns. A store that turns unwritable (ext4's immutable flag: EPERM on every write,
even through open files) fails every save: one clear error line, the meters serve on
from memory, the status line, HTTP ``/api/info`` and ``/metrics`` say so, and saving
resumes when it is writable again; a clean stop then keeps at least what a client
read."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import find_free_port
from tests.reliability.support import (
    ENERGY_ADDRESS,
    ENERGY_WORDS,
    Drained,
    fill,
    immutable,
    minimeter,
    small_filesystem,
)
from twin.core import NvState
from twin.errors import StoreError
from twin.modbus.client import MeterClient
from twin.store import STORE_FILENAME, Store

SERIAL = "MM00000001"
SPEED = 100.0
CHECKPOINT_S = 0.2


def _nv(energy_uj: int) -> NvState:
    return NvState(energy_delivered_uj=energy_uj)


def test_full_disk_refuses_a_save_that_needs_space_then_recovers() -> None:
    with small_filesystem(4096) as fs:
        path = fs / STORE_FILENAME
        store = Store(path)
        try:
            store.save_many([(f"M{i}", _nv(1)) for i in range(5)])
            filler = fill(fs)
            # The fleet's rows again: the WAL is reused, no new blocks needed.
            for n in range(2, 30):
                store.save_many([(f"M{i}", _nv(n)) for i in range(5)])
            assert store.load("M4") == _nv(29)
            with pytest.raises(StoreError) as info:
                store.save_many([(f"N{i:03d}", _nv(7)) for i in range(300)])
            msg = str(info.value)
            assert str(path) in msg and "disk full" in msg and "\n" not in msg
            assert "rollback" not in msg  # the old bug blamed a second ROLLBACK
            assert store.load("N000") is None and store.load("M4") == _nv(29)
            filler.unlink()
            store.save_many([(f"N{i:03d}", _nv(7)) for i in range(300)])
        finally:
            store.close()
        with Store(path) as reopened:
            assert reopened.load("N299") == _nv(7) and reopened.load("M0") == _nv(29)
        check = sqlite3.connect(path)
        assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        check.close()


def test_step_commits_go_on_in_the_wal_on_a_full_disk() -> None:
    with small_filesystem(4096) as fs:
        path = fs / STORE_FILENAME
        with Store(path) as store:
            store.save_many([(f"M{i}", _nv(1)) for i in range(5)])
            fill(fs)
            # Each step's commit appends to the WAL; past the blocks it has, the store
            # checkpoints and commits again from its start: no step is refused.
            for n in range(2, 300):
                store.save_many([(f"M{i}", _nv(n)) for i in range(5)], durable=False)
            assert store.load("M0") == _nv(299)
            store.save_many([(f"M{i}", _nv(300)) for i in range(5)])  # and durably
        with Store(path) as reopened:
            assert reopened.load("M4") == _nv(300)


def test_unwritable_store_is_refused_at_start_naming_the_file() -> None:
    with small_filesystem(2048) as fs:
        path = fs / STORE_FILENAME
        with Store(path) as store:
            store.save(SERIAL, _nv(5))
        before = path.read_bytes()
        immutable(path, on=True)
        with pytest.raises(StoreError) as info:
            Store(path)
        msg = str(info.value)
        assert str(path) in msg and "read-only" in msg and "\n" not in msg
        immutable(path, on=False)
        assert path.read_bytes() == before
        with Store(path) as store:
            assert store.load(SERIAL) == _nv(5)


def _stored_energy_uj(path: Path) -> int:
    with Store(path, read_only=True) as view:
        nv = view.load(SERIAL)
    return 0 if nv is None else nv.energy_delivered_uj


async def _served_wh(port: int) -> int:
    async with MeterClient(port=port) as client:
        return await client.read_uint(ENERGY_ADDRESS, ENERGY_WORDS)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


async def _until(what: str, check: object, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await asyncio.to_thread(check):  # type: ignore[arg-type]
        if time.monotonic() > deadline:
            raise AssertionError(f"not {what} within {timeout_s} s")
        await asyncio.sleep(0.1)


async def test_full_then_read_only_state_dir_while_running(tmp_path: Path) -> None:
    port, http_port = find_free_port(), find_free_port()
    with small_filesystem(8192) as fs:
        path = fs / STORE_FILENAME
        twin = Drained(
            minimeter(
                "run",
                "--port",
                str(port),
                "--http",
                str(http_port),
                "--state-dir",
                str(fs),
                "--speed",
                str(SPEED),
                "--checkpoint-interval",
                str(CHECKPOINT_S),
            )
        )
        try:
            twin.wait_line(lambda ln: ln.startswith("serving"))
            await _until("saved", lambda: _stored_energy_uj(path) > 0)

            # A full disk: commits carry on in the WAL's existing blocks.
            filler = fill(fs)
            before = _stored_energy_uj(path)
            await _until("saved on a full disk", lambda: _stored_energy_uj(path) > before)

            # An unwritable store: every save fails.
            for name in (STORE_FILENAME, f"{STORE_FILENAME}-wal"):
                immutable(fs / name, on=True)
            failed_at = time.monotonic()
            error = twin.wait_line(lambda ln: "saving failed" in ln, stderr=True)
            assert str(path) in error and "I/O error" in error
            assert "serving continues from memory" in error
            wh = await _served_wh(port)
            await asyncio.sleep(0.5)
            assert await _served_wh(port) > wh  # serving from memory, energy moving on
            info = json.loads(
                await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/api/info")
            )
            assert "saving failed" in info["store_error"]
            metrics = await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/metrics")
            assert "minimeter_store_failing 1.0" in metrics
            twin.wait_line(lambda ln: "store=FAILING" in ln)
            await asyncio.sleep(1.5)  # retried once a second meanwhile: still one line
            assert sum("saving failed" in ln for ln in twin.err) == 1

            # Writable again (and space freed): saving resumes on its own.
            for name in (STORE_FILENAME, f"{STORE_FILENAME}-wal"):
                immutable(fs / name, on=False)
            filler.unlink()
            back_at = time.monotonic()
            twin.wait_line(lambda ln: "saving works again" in ln, stderr=True)
            recovered_s = time.monotonic() - back_at
            before = _stored_energy_uj(path)
            await _until("saved again", lambda: _stored_energy_uj(path) > before)
            info = json.loads(
                await asyncio.to_thread(_get, f"http://127.0.0.1:{http_port}/api/info")
            )
            assert info["store_error"] is None
            served_wh = await _served_wh(port)
            assert twin.stop(signal.SIGTERM) == 0
            stored_wh = _stored_energy_uj(path) // 3_600_000_000
            assert stored_wh >= served_wh  # the clean stop saved the latest state
            assert not any("Traceback" in ln for ln in twin.err + twin.out)
            print(
                f"\n{error}\nunwritable for {back_at - failed_at:.1f} s; saving back "
                f"{recovered_s:.2f} s after the dir was writable; final {stored_wh} Wh"
            )
        finally:
            twin.kill()
