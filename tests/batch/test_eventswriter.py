"""events.jsonl written by the events process the run feeds (twin.batch.eventswriter):
the same bytes as write_events in-process; any failure falls back to that; nothing is
left running after a cancel."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import session_processes, sigint_default
from twin.batch.eventlog import EventLog, write_events
from twin.batch.eventswriter import MIN_DURATION_S, PIPE_BYTES, EventsWriter
from twin.batch.report import write_all
from twin.batch.simulate import BlockHook, SimResult, SimSettings, simulate
from twin.core import DemandCloses, PowerLost
from twin.forking import can_fork
from twin.loadprofile import load_profile

pytestmark = pytest.mark.skipif(
    not can_fork(), reason="no fork here (not Linux, one core, or another thread running)"
)


def run(hook: BlockHook | None, profile: str, edges: bool = False) -> SimResult:
    """Three days: several blocks, so the process is fed during the run."""
    settings = SimSettings(duration_s=3 * 86_400.0, interval_s=60.0, edges=edges)
    return simulate(load_profile(profile), settings, each_block=hook)


def started() -> EventsWriter:
    writer = EventsWriter.start()
    assert writer is not None and writer.pid is not None
    return writer


def alive(pid: int) -> bool:
    """Whether ``pid`` is a process (not yet reaped) of this test's."""
    return Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize(
    ("profile", "edges"),
    [("residential-day", False), ("brownout-outage", False), ("meter-faults", True)],
)
def test_the_process_writes_what_write_events_writes(
    tmp_path: Path, profile: str, edges: bool
) -> None:
    """Events in time order, out of it (sorted when written), pulse edges merged in."""
    writer = started()
    result = run(writer, profile, edges)
    writer.write(tmp_path / "process.jsonl", result.events, result.edges)
    assert writer.finish() and writer.pid is None
    write_events(tmp_path / "plain.jsonl", result.events, result.edges)
    got = (tmp_path / "process.jsonl").read_bytes()
    assert got == (tmp_path / "plain.jsonl").read_bytes()
    assert got.count(b"\n") == len(result.events) + sum(len(e) for e in result.edges) > 100


def test_write_all_with_the_process_writes_the_same_events_file(tmp_path: Path) -> None:
    writer = started()
    result = run(writer, "brownout-outage")
    write_all(tmp_path / "out", result, plots=False, events=writer)
    assert writer.pid is None
    write_events(tmp_path / "plain.jsonl", result.events, result.edges)
    got = (tmp_path / "out" / "events.jsonl").read_bytes()
    assert got == (tmp_path / "plain.jsonl").read_bytes()


def test_a_process_killed_during_the_run_is_replaced_by_writing_here(tmp_path: Path) -> None:
    writer = started()
    pid = writer.pid
    assert pid is not None
    blocks = []

    def kill_after_the_first_block(done: int, total: int, events: EventLog) -> None:
        writer(done, total, events)
        blocks.append(done)
        if len(blocks) == 1:
            os.kill(pid, signal.SIGKILL)

    result = run(kill_after_the_first_block, "brownout-outage")
    assert len(blocks) > 1
    write_all(tmp_path / "out", result, plots=False, events=writer)
    assert writer.pid is None and not alive(pid)
    write_events(tmp_path / "plain.jsonl", result.events, result.edges)
    assert (tmp_path / "out" / "events.jsonl").read_bytes() == (
        tmp_path / "plain.jsonl"
    ).read_bytes()


def test_a_process_that_fails_to_write_says_so(tmp_path: Path) -> None:
    writer = started()
    result = run(writer, "residential-day")
    writer.write(tmp_path / "missing" / "events.jsonl", result.events, result.edges)
    assert not writer.finish()
    assert writer.pid is None


def test_a_short_run_forks_no_process() -> None:
    assert EventsWriter.start(MIN_DURATION_S - 1.0) is None


def test_a_process_never_told_to_write_is_ended() -> None:
    writer = started()
    pid = writer.pid
    assert pid is not None
    run(writer, "residential-day")
    assert not writer.finish()
    assert writer.pid is None and not alive(pid)
    writer.stop()  # nothing left to end


def test_the_run_never_waits_for_a_process_that_reads_nothing(tmp_path: Path) -> None:
    """Fed more than the pipe holds while stopped (SIGSTOP): the feeding returns, the
    rest is kept and sent when the file is asked for."""
    writer = started()
    pid = writer.pid
    assert pid is not None
    log, day = EventLog([PowerLost(0.0)]), np.arange(1.0, 289.0) * 300.0
    os.kill(pid, signal.SIGSTOP)
    try:
        for k in range(4 * PIPE_BYTES // (32 * day.shape[0])):  # 32 bytes a close
            t = k * 86_400.0 + day
            log.add(DemandCloses(t, t / 1e5, t / 2e5, t / 3e5))
            writer(k, 0, log)
        writer.write(tmp_path / "events.jsonl", log, [])
    finally:
        os.kill(pid, signal.SIGCONT)
    assert writer.finish()
    write_events(tmp_path / "plain.jsonl", log, [])
    assert (tmp_path / "events.jsonl").read_bytes() == (tmp_path / "plain.jsonl").read_bytes()


def test_ctrl_c_during_a_run_exits_130_and_leaves_no_process(tmp_path: Path) -> None:
    """SIGINT to the process group (what a terminal's Ctrl-C sends) once the events,
    plot and sampler processes are all there: rc 130, no traceback, nothing left."""
    args = ["simulate", "residential-year", "--duration", "3650d", "--interval", "1h"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", *args, "--out", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=sigint_default,
    )
    try:
        while len(session_processes(proc.pid)) < 4 and proc.poll() is None:
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert b"Traceback" not in err
    assert session_processes(proc.pid) == []
    assert not (tmp_path / "out" / "events.jsonl").exists()
