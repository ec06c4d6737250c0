"""Files of a batch simulation: time series (CSV, Parquet), events, summary and plots.

Theory of operation. Everything written here is a pure function of the
:class:`~twin.batch.simulate.SimResult`, with fixed number formats and no run
timestamps, so two runs of the same profile, model and seed give byte-identical
``timeseries.csv``, ``events.jsonl`` and ``summary.json``. The CSV's numbers are
``%d``, ``%.3f`` or ``%.6f`` per column, formatted a chunk of rows at a time with
numpy (``twin.batch.csvtext``: the same bytes as Python's ``%``; a year at one
minute is half a million rows). The events' lines are ``twin.batch.eventlog``'s,
written by the events process the run fed (``twin.batch.eventswriter``) when there
is one. Parquet is written only when pyarrow is installed. Plots are
``twin.batch.plots``.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import sys
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from twin.batch.csvtext import format_rows
from twin.batch.eventlog import write_events
from twin.batch.eventswriter import EventsWriter
from twin.batch.plotdata import PlotData, plot_data
from twin.batch.plots import PLOT_FILES, Figures, preload, write_plots
from twin.batch.simulate import SimResult
from twin.errors import ConfigError
from twin.forking import can_fork, interrupts_held, release_interrupts

#: Rows formatted at a time: the chunk's byte matrix (~200 bytes a row) stays small.
_CHUNK_ROWS = 16_384
#: Every file name a run can write (write_plots writes exactly PLOT_FILES). A new run
#: removes these first, so --out holds only its own outputs (no stale plots after
#: --no-plot, no stale Parquet without pyarrow); any other file there is left alone.
DATA_FILES = ("timeseries.csv", "timeseries.parquet", "events.jsonl", "summary.json")


def decimals(name: str) -> int | None:
    """Decimals of a column in the CSV (None: an integer, ``%d``)."""
    if name.endswith(("_count", "error_code")):
        return None
    if name.endswith("_wh") or name.endswith("_kw"):
        return 6
    return 3


def write_csv(path: Path, columns: dict[str, npt.NDArray[Any]]) -> None:
    names = list(columns)
    places = [decimals(n) for n in names]
    data = [np.asarray(columns[n]) for n in names]  # format_rows takes int64 as it is
    rows = data[0].shape[0] if data else 0
    with path.open("wb") as f:
        f.write((",".join(names) + "\n").encode("ascii"))
        for a in range(0, rows, _CHUNK_ROWS):
            f.write(format_rows([x[a : a + _CHUNK_ROWS] for x in data], places))


def write_parquet(path: Path, columns: dict[str, npt.NDArray[Any]]) -> bool:
    """Write Parquet when pyarrow is installed; returns whether it did."""
    try:
        import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]
        import pyarrow.parquet as pq  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    pq.write_table(pa.table({k: np.asarray(v) for k, v in columns.items()}), str(path))
    return True


def summary_json(summary: dict[str, Any]) -> str:
    return json.dumps(summary, indent=2) + "\n"


def prepare_out_dir(out_dir: Path) -> None:
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out: cannot create {out_dir}: {exc.strerror}") from None


def remove_old_outputs(out_dir: Path) -> None:
    """Remove an earlier run's outputs from ``out_dir``: our file names only.

    Called when the new outputs are ready to write, so a run that fails leaves the
    previous run's files as they were.
    """
    for name in DATA_FILES + PLOT_FILES:
        try:
            (out_dir / name).unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"--out: cannot remove the earlier {out_dir / name}: {exc.strerror}"
            ) from None


#: The figures the plot process's own helper draws (the costlier half: four axes of
#: pulse rates among them); the plot process draws the rest meanwhile.
_HELPER_PLOTS = ("energy.png", "pulses.png", "status.png")


def _plot_child(
    receiver: Connection, sender: Connection, names: Sequence[str], helper_names: Sequence[str]
) -> None:
    """A plot process's body: while the run goes on, matplotlib imported, a helper
    forked for ``helper_names`` (if any; both cores are free after the run), and the
    frames of the other ``names`` made (:class:`~twin.batch.plots.Figures`); then the
    numbers the run sends passed on to the helper and those figures drawn. Exit status
    1 if it or its helper failed, no traceback (the parent plots again in-process,
    where the error is reported as usual); 0 without drawing when the run sent
    nothing (it failed, or cancelled the plots)."""
    helper, sent = None, False
    try:
        release_interrupts()  # a Ctrl-C: KeyboardInterrupt, a quiet exit below
        sender.close()  # the parent's end: closed here too, so its close reads as EOF
        preload()
        if helper_names:
            helper = PlotProcess.start(helper_names)
        if helper is not None:
            names = [name for name in names if name not in helper_names]
        figures = Figures(names)
        figures.warm()
        try:
            out_dir, data = receiver.recv()
        except EOFError:
            return
        if helper is not None:
            helper.draw(out_dir, data)
        sent = True
        figures.draw(out_dir, data)
    except BaseException:  # reported by the in-process retry
        sys.exit(1)
    finally:  # the helper's pipe closed (EOF when nothing was sent), the helper joined
        if helper is not None:
            try:
                drew = helper.finish()
            except BaseException:  # a Ctrl-C while joining: no second one, a quiet exit
                release_interrupts(ignore=True)
                helper.finish()
                sys.exit(1)
            if not drew and sent:
                sys.exit(1)


class PlotProcess:
    """A forked process that draws the plots while this one writes the data files.

    Started before the run when it can be (``minimeter simulate`` does), it imports
    matplotlib and makes the figures' frames on the second core while the run goes on,
    instead of a thread that would hold the interpreter lock against the run; when the
    run is done it is sent the figures' binned numbers (:func:`plot_data`, kilobytes,
    not the result's hundred megabytes). Only on Linux (fork is not safe on macOS),
    with no other thread running (a fork copies one thread and whatever locks the
    others held) and more than one core; :meth:`start` returns None otherwise.
    """

    def __init__(self, proc: multiprocessing.process.BaseProcess, sender: Connection) -> None:
        self._proc, self._sender = proc, sender

    @classmethod
    def start(cls, names: Sequence[str] = PLOT_FILES) -> PlotProcess | None:
        """Fork a process that draws ``names``: every plot by default, then with a
        helper of its own for half of them."""
        if not can_fork():
            return None
        context = multiprocessing.get_context("fork")
        receiver, sender = context.Pipe(duplex=False)
        helper_names = _HELPER_PLOTS if tuple(names) == PLOT_FILES else ()
        # Not a daemon: it forks a helper of its own.
        proc = context.Process(target=_plot_child, args=(receiver, sender, names, helper_names))
        with interrupts_held() as undo:
            proc.start()
            receiver.close()
            plotter = cls(proc, sender)
            undo.append(plotter.finish)  # nothing sent: it exits without drawing
        return plotter

    def draw(self, out_dir: Path, data: PlotData) -> None:
        with contextlib.suppress(BrokenPipeError):  # it failed before reading: see finish
            self._sender.send((out_dir, data))
        self._sender.close()

    def finish(self) -> bool:
        """Wait for the process (a cancel when nothing was sent); True when it drew
        every plot."""
        sent = self._sender.closed
        self._sender.close()
        self._proc.join()
        return sent and self._proc.exitcode == 0


def write_all(
    out_dir: Path,
    result: SimResult,
    plots: bool = True,
    plotter: PlotProcess | None = None,
    events: EventsWriter | None = None,
) -> list[Path]:
    """Write every file of a run into ``out_dir``; returns the paths written.

    The plots are drawn by ``plotter`` (or a plot process forked now) and the events
    written by ``events`` (the events process the run fed) while this process writes
    the time series; each in-process instead when no process could be forked or the
    process failed. The files are the same either way.
    """
    wrote_events = False
    try:
        prepare_out_dir(out_dir)
        remove_old_outputs(out_dir)
        written = [out_dir / "timeseries.csv", out_dir / "events.jsonl", out_dir / "summary.json"]
        if events is not None:
            events.write(written[1], result.events, result.edges)
        if plots:
            plotter = plotter or PlotProcess.start()
            if plotter is not None:
                plotter.draw(out_dir, plot_data(result))
        write_csv(written[0], result.columns)
        written[2].write_text(summary_json(result.summary), encoding="utf-8")
        if write_parquet(out_dir / "timeseries.parquet", result.columns):
            written.append(out_dir / "timeseries.parquet")
        wrote_events = events is not None and events.finish()
    finally:
        if events is not None:
            events.stop()  # after a failure or a cancel: ended, not waited for
        drawn = plotter is not None and plotter.finish()
    if not wrote_events:
        write_events(written[1], result.events, result.edges)
    if drawn:
        written.extend(out_dir / name for name in PLOT_FILES)
    elif plots:
        written.extend(write_plots(out_dir, result))
    return written
