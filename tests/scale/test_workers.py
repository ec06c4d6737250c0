"""`minimeter run --workers K`: K shard processes under one supervisor.

A fleet of 4 ports x 25 meters runs as 2 workers (x60, checkpoints every 0.5 s).
The test finds each worker by the pid in its store's lock file (``STATE/shard-I``),
SIGKILLs one, and checks the supervisor restarts it with its state: a new process,
the same meters, no energy lost past the last checkpoint; the other worker is left
alone. SIGTERM to the supervisor stops every worker cleanly (a last checkpoint) and
exits 0; a worker that cannot start (its port taken) makes the supervisor stop and
exit 1 with one line naming the shard.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, wait_for_line
from tests.scale.test_shards import free_ports, read_meters
from twin.health import probe
from twin.store.sqlite import LOCK_SUFFIX, Store, store_path

UNITS = 25


@pytest.fixture
def fleet(tmp_path: Path) -> tuple[Path, list[int]]:
    ports = free_ports(4)
    meters = [{"unit": u, "port": p} for p in ports for u in range(1, UNITS + 1)]
    path = tmp_path / "fleet.yaml"
    path.write_text(yaml.safe_dump({"fleet": 1, "meters": meters}))
    return path, ports


def _start(fleet: Path, state: Path, *extra: str) -> subprocess.Popen[str]:
    argv = [
        sys.executable, "-m", "twin", "run", "--fleet", str(fleet), "--workers", "2",
        "--state-dir", str(state), "--speed", "60", "--tick", "0.5",
        "--checkpoint-interval", "0.5", *extra,
    ]  # fmt: skip
    return subprocess.Popen(
        argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.fixture
def supervisor(
    fleet: tuple[Path, list[int]], tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[str], str]]:
    proc = _start(fleet[0], tmp_path / "state")
    try:
        line = wait_for_line(proc, "serving 2 workers", timeout_s=120)
        yield proc, line
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def _worker_pid(state: Path, shard: int) -> int | None:
    """The pid a shard's store lock names; None while a (re)starting worker writes it
    (the lock file is truncated, then written)."""
    lock = store_path(state / f"shard-{shard}")
    text = lock.with_name(lock.name + LOCK_SUFFIX).read_text().strip()
    return int(text) if text.isdigit() else None


def _stored_wh(state: Path, serial: str) -> int:
    store = Store(store_path(state), read_only=True)
    try:
        nv = store.load(serial)
    finally:
        store.close()
    return 0 if nv is None else nv.energy_delivered_uj // 3_600_000_000  # None: not yet saved


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/status").read_text().find("State:\tZ") < 0


@pytest.mark.timeout(300)  # spawns and restarts workers: slow on a loaded machine
def test_a_sigkilled_worker_is_restarted_with_its_state(
    fleet: tuple[Path, list[int]], supervisor: tuple[subprocess.Popen[str], str], tmp_path: Path
) -> None:
    proc, line = supervisor
    _, ports = fleet
    state = tmp_path / "state"
    # Two shards, two ports each: the plan's.
    assert re.findall(r"shard (\d/2) modbus tcp 127\.0\.0\.1:([\d,]+)", line) == [
        ("0/2", f"{ports[0]},{ports[1]}"),
        ("1/2", f"{ports[2]},{ports[3]}"),
    ]
    meter = (ports[3], 7)
    serial = f"MM{ports[3]:05d}007"
    victim, other = _worker_pid(state, 1), _worker_pid(state, 0)
    assert victim is not None and other is not None  # written before "serving"
    assert victim != other and {victim, other}.isdisjoint({proc.pid})
    wait_for_line(proc, "workers=2/2", timeout_s=60)  # a status line: both report
    for _ in range(600):  # energy is registering and checkpointed
        if _stored_wh(state / "shard-1", serial) > 0:
            break
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    checkpointed = _stored_wh(state / "shard-1", serial)
    assert checkpointed > 0
    wait_for_line(proc, "restarts=1", timeout_s=120)
    for _ in range(600):  # the new worker has its store and answers Modbus
        restarted = _worker_pid(state, 1)
        if restarted not in (None, victim) and probe("127.0.0.1", ports[3]) is None:
            break
        time.sleep(0.05)
    assert restarted is not None and restarted != victim
    assert _alive(restarted) and not _alive(victim)
    assert _worker_pid(state, 0) == other and _alive(other)  # the other one untouched
    (got,) = asyncio.run(read_meters([meter])).values()
    assert got[0] == serial and got[1] >= checkpointed  # continues from its store
    # SIGTERM: forwarded; every worker writes its last checkpoint and the supervisor exits 0.
    proc.send_signal(signal.SIGTERM)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert not _alive(restarted) and not _alive(other)
    assert _stored_wh(state / "shard-1", serial) >= got[1]


def test_a_worker_that_cannot_start_stops_the_supervisor(
    fleet: tuple[Path, list[int]], tmp_path: Path
) -> None:
    path, ports = fleet
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[3]))
        taken.listen()
        proc = _start(path, tmp_path / "state")
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    (last,) = [ln for ln in err.splitlines() if ln.startswith("minimeter run: error:")]
    assert "shard 1/2" in last and str(ports[3]) in last
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--workers", "0"), "--workers 0: expected 1..256"),
        (("--workers", "2", "--shard", "0/2"), "--workers and --shard exclude each other"),
        (("--workers", "5"), "4 port(s) for 5 shards"),
        (("--workers", "2", "--http", "0"), "--workers with --http"),
    ],
)
def test_bad_worker_options_are_one_line_errors(
    fleet: tuple[Path, list[int]], tmp_path: Path, extra: tuple[str, ...], message: str
) -> None:
    argv = [sys.executable, "-m", "twin", "run", "--fleet", str(fleet[0]), "--no-state", *extra]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and message in out.stderr, out.stderr
