"""MeterCore: the Mini Meter's metrology, outputs, demand and display.

One entry point, :meth:`MeterCore.advance`, takes a :class:`SampleBlock` of any
length, so the live twin (a few samples per tick) and batch simulation (a million
per call) share one implementation and get identical registers for the same
samples, however they are split into blocks.

Per sample: the supply decides whether the meter is powered (102 V to power up,
hysteresis and a hold-up time on the way down: see ``supply``). The block is cut
into runs of constant power state. In a powered run the registers gain the run's
energy as the wiring makes each element see it (see ``wiring``, ``registration``),
the pulse outputs, counter and load LED follow delivered energy (see ``pulses``),
demand is fed the run (see ``demand``) and status bits are computed per sample so
error events carry their time (see ``status``). An unpowered run registers nothing
and keeps every register; the next powered sample boots the meter and counts a
power-up; while unpowered the instantaneous readings are NaN ("not available").
Commands (see ``commands``) apply at the core's current time.

A core is one row of a :class:`~twin.core.bank.MeterBank`, where the accumulation
lives (see ``bank`` and ``bank_step``): a core made alone owns a bank of one; the
runtime makes its meters' cores in one bank (:meth:`MeterCore.in_bank`) and advances
the rows that share a block together, with the same results.

No clock, IO or global RNG here: time is the block's sample period, integer
microseconds since the core's start.
"""

from __future__ import annotations

import numpy as np

from twin.core.bank import MeterBank
from twin.core.bank_step import advance_rows
from twin.core.commands import Command
from twin.core.events import Event
from twin.core.models import MeterConfig
from twin.core.samples import SampleBlock
from twin.core.shared import SharedMeasurements
from twin.core.snapshot import NvState, Snapshot


class MeterCore:
    """One meter. Not thread-safe; the shell serialises advance() and apply()."""

    def __init__(
        self,
        config: MeterConfig | None = None,
        nv: NvState | None = None,
        *,
        start_time_s: float = 0.0,
        emit_edges: bool = True,
        emit_series: bool = False,
        shared: SharedMeasurements | None = None,
    ) -> None:
        self.config = config or MeterConfig()
        self.bank = MeterBank(emit_edges=emit_edges, emit_series=emit_series)
        self.row = self.bank.add(self.config, nv, start_time_s=start_time_s, shared=shared)
        self.rows = np.array([self.row], np.int64)

    @classmethod
    def in_bank(
        cls,
        bank: MeterBank,
        config: MeterConfig,
        nv: NvState | None = None,
        *,
        start_time_s: float = 0.0,
        shared: SharedMeasurements | None = None,
    ) -> MeterCore:
        """A core that is a new row of ``bank`` (its edges and series as the bank's)."""
        core = cls.__new__(cls)
        core.config = config
        core.bank = bank
        core.row = bank.add(config, nv, start_time_s=start_time_s, shared=shared)
        core.rows = np.array([core.row], np.int64)
        return core

    @property
    def emit_edges(self) -> bool:
        return self.bank.emit_edges

    @property
    def emit_series(self) -> bool:
        return self.bank.emit_series

    @property
    def shared(self) -> SharedMeasurements | None:
        """Where the core keeps and finds the measurements of a block; the shell may swap
        it when the meter's inputs change."""
        return self.bank.shared[self.row]

    @shared.setter
    def shared(self, shared: SharedMeasurements | None) -> None:
        self.bank.shared[self.row] = shared

    @property
    def time_s(self) -> float:
        return int(self.bank.time_us[self.row]) / 1e6

    def advance(self, block: SampleBlock) -> list[Event]:
        """Advance over ``block``; returns the events in time order per kind."""
        return advance_rows(self.bank, self.rows, block).get(self.row, [])

    def apply(self, command: Command) -> list[Event]:
        """Apply one command at the core's current time."""
        return self.bank.apply(self.row, command)

    def nv_state(self) -> NvState:
        return self.bank.nv_state(self.row)

    def snapshot(self) -> Snapshot:
        return self.bank.snapshot(self.row)
