"""The plot process (frames made during the run): a dead one falls back, Ctrl-C stops all."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import session_processes, sigint_default
from twin.batch.plots import PLOT_FILES, write_plots
from twin.batch.report import PlotProcess, write_all
from twin.batch.simulate import SimSettings, simulate
from twin.loadprofile import load_profile

YEAR = ["simulate", "residential-year", "--duration", "365d", "--json"]


def started_plot_process() -> tuple[PlotProcess, multiprocessing.process.BaseProcess]:
    before = set(multiprocessing.active_children())
    plotter = PlotProcess.start()
    if plotter is None:
        pytest.skip("no fork here (not Linux, one core, or another thread running)")
    (proc,) = set(multiprocessing.active_children()) - before
    return plotter, proc


@pytest.mark.parametrize("when", ["making its frames", "waiting for the numbers"])
def test_a_killed_plot_process_falls_back_to_the_same_plots(tmp_path: Path, when: str) -> None:
    pytest.importorskip("matplotlib")
    plotter, proc = started_plot_process()
    result = simulate(load_profile("meter-faults"), SimSettings(step_s=5.0, interval_s=60.0))
    if when == "waiting for the numbers":
        time.sleep(2.0)  # a margin for its import and frames, not a measured duration
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    written = write_all(tmp_path / "out", result, plotter=plotter)  # no BrokenPipeError
    assert {p.name for p in written} >= set(PLOT_FILES)
    for path in write_plots(tmp_path, result):
        assert path.read_bytes() == (tmp_path / "out" / path.name).read_bytes(), path.name


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("whom", ["the process group", "the command only"])
def test_ctrl_c_during_the_run_exits_130_and_leaves_no_process(tmp_path: Path, whom: str) -> None:
    """A terminal's Ctrl-C signals the whole foreground group (the plot process making
    its frames, the sampler); ``kill -INT`` the command alone: its children stop too."""
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "twin", *YEAR, "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=sigint_default,
    )
    deadline = time.monotonic() + 60.0
    # The command, its events process (forked first), and the plot process.
    while len(session_processes(proc.pid)) < 3 and proc.poll() is None:
        assert time.monotonic() < deadline, "no plot process appeared"
        time.sleep(0.01)
    if whom == "the process group":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 10.0
    while session_processes(proc.pid):  # children reaped by their parents before it exits
        assert time.monotonic() < deadline, f"left behind: {session_processes(proc.pid)}"
        time.sleep(0.01)
    assert not list(out.glob("*.png"))
