"""Batch simulation: a profile through one meter core as fast as it goes (the same
drive loop and metrology as the live twin), recorded per row and per event, and the
report written from it (CSV/Parquet time series, events, summary, plots).
"""

from twin.batch.eventlog import EventLog
from twin.batch.plots import PLOT_FILES
from twin.batch.recorder import Recorder
from twin.batch.report import DATA_FILES, write_all
from twin.batch.simulate import SimResult, SimSettings, simulate, steps

__all__ = [
    "DATA_FILES",
    "PLOT_FILES",
    "EventLog",
    "Recorder",
    "SimResult",
    "SimSettings",
    "simulate",
    "steps",
    "write_all",
]
