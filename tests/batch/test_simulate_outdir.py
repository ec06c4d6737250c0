"""simulate --out DIR holds exactly this run's outputs; other files there are kept."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

import pytest

from twin.batch.plots import PLOT_FILES
from twin.batch.report import DATA_FILES
from twin.batch.simulate import cyclic_gc_paused
from twin.cli import main as cli_main

RUN = ["simulate", "full-load-then-faults", "--step", "60", "--json"]


def test_no_plot_run_removes_an_earlier_runs_plots_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli_main([*RUN, "--out", str(out)]) == 0
    assert {p.name for p in out.glob("*.png")} == set(PLOT_FILES)  # all five names known
    (out / "notes.txt").write_text("mine")
    (out / "my-plot.png").write_text("also mine")
    (out / "timeseries.parquet").write_text("stale: a pyarrow-less run must not keep it")
    assert cli_main([*RUN, "--out", str(out), "--no-plot"]) == 0
    capsys.readouterr()
    names = {p.name for p in out.iterdir()}
    ours = names & set(DATA_FILES + PLOT_FILES)
    assert not ours & set(PLOT_FILES)
    assert ours >= {"timeseries.csv", "events.jsonl", "summary.json"}
    if "timeseries.parquet" in ours:  # only when pyarrow wrote a real one
        assert (out / "timeseries.parquet").read_bytes()[:4] == b"PAR1"
    assert names - ours == {"notes.txt", "my-plot.png"}
    assert (out / "notes.txt").read_text() == "mine"


def test_a_failed_run_leaves_the_earlier_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert cli_main([*RUN, "--out", str(out), "--no-plot"]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert cli_main([*RUN[:2], "--step", "2h", "--out", str(out)]) == 1  # step > profile
    capsys.readouterr()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_an_output_name_taken_by_a_directory_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    (out / "power.png").mkdir(parents=True)
    assert cli_main([*RUN, "--out", str(out)]) == 1
    # (a --step 60 run also warns that the step is too coarse for the 10 Wh output)
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if ": warning: " not in ln]
    assert len(err) == 1 and "--out: cannot remove" in err[0] and "power.png" in err[0]


def test_cyclic_gc_paused_for_a_run_and_restored() -> None:
    assert gc.isenabled()
    with cyclic_gc_paused():
        assert not gc.isenabled()
        assert gc.get_freeze_count() > 0
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_cli_runs_write_byte_identical_files(tmp_path: Path) -> None:
    """Every file of a run, plots included, is the same bytes run after run, whichever
    process wrote it (the plot and events processes race the data files)."""
    args = ["simulate", "meter-faults", "--step", "5", "--interval", "2min", "--json"]
    outputs = []
    for k in range(5):
        out = tmp_path / f"run{k}"
        proc = subprocess.run(
            [sys.executable, "-m", "twin", *args, "--out", str(out)],
            capture_output=True,
            check=True,
            timeout=120,
        )
        outputs.append({p.name: p.read_bytes() for p in sorted(out.iterdir())} | {"": proc.stdout})
    assert set(outputs[0]) >= {*PLOT_FILES, "timeseries.csv", "events.jsonl", "summary.json"}
    for other in outputs[1:]:
        assert other == outputs[0]
