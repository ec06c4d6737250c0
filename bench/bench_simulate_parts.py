"""Where a year of `minimeter simulate` goes: CPU time per part, in one process.

The command spreads a run over threads and processes (see docs/architecture.md); this
runs the same parts one after the other in one process and prints the CPU time of
each, so the critical path on two free cores can be worked out: the run (sampler,
core and recorder on one thread), then the rows, the plots' numbers,
the CSV, the events and the figures (each half of them, as the plot process and its
helper draw them: their frames made during the run, apart), and matplotlib's import.
The garbage collector is paused as the CLI pauses it.

    .venv/bin/python bench/bench_simulate_parts.py [--profile residential-year] [--days 365]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cumsum_ref import load

T0 = time.process_time()
from twin.batch.eventlog import write_events  # noqa: E402
from twin.batch.plotdata import plot_data  # noqa: E402
from twin.batch.plots import PLOT_FILES, Figures, preload  # noqa: E402
from twin.batch.report import write_csv  # noqa: E402
from twin.batch.simulate import SimSettings, cyclic_gc_paused, keep_freed_memory  # noqa: E402
from twin.loadprofile import load_profile  # noqa: E402

IMPORTS_S = time.process_time() - T0
HELPER_PLOTS = ("energy.png", "pulses.png", "status.png")  # as twin.batch.report's helper


def cpu(work: Callable[[], Any]) -> tuple[Any, float]:
    t = time.process_time()
    result = work()
    return result, time.process_time() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="residential-year")
    parser.add_argument("--days", type=float, default=365)
    args = parser.parse_args()
    keep_freed_memory()
    module = sys.modules["twin.batch.simulate"]
    print(f"start: {load()}")
    with cyclic_gc_paused(), tempfile.TemporaryDirectory(prefix="bench-parts-") as tmp:
        out = Path(tmp)
        profile = load_profile(args.profile)
        main_thread = time.thread_time()
        result = module.simulate(profile, SimSettings(duration_s=args.days * 86_400.0))
        main_thread = time.thread_time() - main_thread
        _, columns_s = cpu(lambda: result.columns)
        data, numbers_s = cpu(lambda: plot_data(result))
        _, csv_s = cpu(lambda: write_csv(out / "timeseries.csv", result.columns))
        _, events_s = cpu(lambda: write_events(out / "events.jsonl", result.events, result.edges))
        _, mpl_s = cpu(preload)
        own = [name for name in PLOT_FILES if name not in HELPER_PLOTS]
        frames_s, figures_s = [], []
        for names in (own, HELPER_PLOTS):
            figures, seconds = cpu(lambda names=names: Figures(names))
            _, warm_s = cpu(figures.warm)
            frames_s.append(seconds + warm_s)
            figures_s.append(cpu(lambda figures=figures: figures.draw(out, data))[1])
    print(
        f"imports of the twin {IMPORTS_S:.2f} s; the run {main_thread:.2f} s; writing: "
        f"columns {columns_s:.2f} s, plot "
        f"numbers {numbers_s:.2f} s, CSV {csv_s:.2f} s, events {events_s:.2f} s; "
        f"matplotlib import {mpl_s:.2f} s, frames {frames_s[0]:.2f} s + {frames_s[1]:.2f} s "
        f"(during the run), figures {figures_s[0]:.2f} s + {figures_s[1]:.2f} s"
    )
    print(f"end: {load()}")


if __name__ == "__main__":
    main()
