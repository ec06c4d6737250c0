"""Batch simulation: a profile through one meter core as fast as it goes (the same
drive loop and metrology as the live twin), recorded per row and per event, and the
report written from it (CSV/Parquet time series, events, summary, plots).
"""

from twin.batch.report import DATA_FILES, PLOT_FILES, write_all
from twin.batch.simulate import SimResult, SimSettings, build_summary, simulate

__all__ = [
    "DATA_FILES",
    "PLOT_FILES",
    "SimResult",
    "SimSettings",
    "build_summary",
    "simulate",
    "write_all",
]
