"""Measurements shared by the meters of a fleet that step the same block.

What a meter measures from a block is a pure function of the block and a few
settings: the supply's power state per sample (given the state it carried in), each
element's power, current and cos(delta), the whole microjoules per sample, and per
powered run the registers' increments, their running total, the status bits 0-9
and the last sample's readings. It depends on the model, the supply settings, the
accuracy curve, an injected calibration error, the registration mode and the
supply's carried state, and on nothing a meter accumulates (energies, pulse
outputs, demand, error events, uptime).

The runtime hands every meter on one noiseless profile the same block object (its
shared sampler). Cores built with one :class:`SharedMeasurements` keep the last
block's measurements per such key there: the first meter of a fleet computes them,
every other meter with the same key only adds them to its own accumulators. So the
per-sample numpy work of a step is done once per group, not once per meter, with
results identical to a meter measuring alone (the same functions on the same
inputs). A new block object replaces the kept ones; the arrays are read, never
written, by the cores that share them. A core asked for per-sample series measures
alone.

A core measuring for itself alone writes its per-sample arrays into a
:class:`Scratch` of buffers it keeps from block to block: they never leave its
``advance``, and reusing them spares the allocator and the page faults of fresh
megabyte arrays every block (on a day-long block that was half the core's time).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from twin.core.accuracy import ErrorCurve
from twin.core.models import MeterModel, RegistrationMode
from twin.core.readings import Readings
from twin.core.registration import Registered, element_power, energy_uj, register
from twin.core.samples import BoolArray, FloatArray, IntArray, SampleBlock
from twin.core.status import (
    InputExtremes,
    U32Array,
    highest,
    line_status_bits,
    lowest_per_line,
    never_reversed,
)
from twin.core.supply import SupplyState


class PoweredRun(NamedTuple):
    """What one powered run of samples (a..b) registers, as every core sharing it sees it."""

    registered: Registered
    cum_uj: IntArray  # running total of registered.delivered
    bits: U32Array  # status bits 0-9 per sample (injected and boot bits are per core)
    readings: Readings  # the run's last sample


class Scratch:
    """Per-sample buffers one core reuses from block to block (grown, never shrunk).

    The views last handed out are kept with their shape or span: blocks of one size
    follow each other, and the views are made once rather than every block (a few
    tenths of a microsecond each, a per-block cost like a short pass's).
    """

    __slots__ = ("_block", "_cum", "_delivered", "_energy", "_power", "_run")

    def __init__(self) -> None:
        self._power: FloatArray = np.empty((2, 0), np.float64)
        self._energy: IntArray = np.empty((2, 0), np.int64)
        self._delivered: IntArray = np.empty(0, np.int64)
        self._cum: IntArray = np.empty(0, np.int64)
        self._block: tuple[tuple[int, int], FloatArray, IntArray] | None = None
        self._run: tuple[tuple[int, int], IntArray, IntArray] | None = None

    def block_buffers(self, elements: int, n: int) -> tuple[FloatArray, IntArray]:
        """(power (elements, n), energy (elements, n)) for a block of ``n`` samples."""
        if self._block is not None and self._block[0] == (elements, n):
            return self._block[1], self._block[2]
        if self._cum.shape[0] < n:
            self._power = np.empty((2, n), np.float64)
            self._energy = np.empty((2, n), np.int64)
            self._delivered = np.empty(n, np.int64)
            self._cum = np.empty(n, np.int64)
            self._run = None  # (its views would hold the old buffers)
        self._block = ((elements, n), self._power[:elements, :n], self._energy[:elements, :n])
        return self._block[1], self._block[2]

    def run_buffers(self, a: int, b: int) -> tuple[IntArray, IntArray]:
        """(delivered, running total) for the run of samples a..b of the block."""
        if self._run is None or self._run[0] != (a, b):
            self._run = ((a, b), self._delivered[a:b], self._cum[a:b])
        return self._run[1], self._run[2]


@dataclass(slots=True)
class Measured:
    """A block as a meter measures it (see the module docstring for what it depends on)."""

    supply: BoolArray | None  # powered per sample; None when powered throughout
    spans: list[tuple[int, int, bool]]  # runs (a, b, powered) of constant power state
    supply_after: tuple[bool, int]  # the supply's carried state after the block
    power_w: FloatArray  # (elements, n)
    current_a: FloatArray
    pf: FloatArray
    energy_uj: IntArray
    extremes: InputExtremes | None = None  # of the whole block's voltages and currents
    runs: dict[tuple[int, int], PoweredRun] = field(default_factory=dict)
    scratch: Scratch | None = None  # the buffers holding these arrays, when not shared


class SharedMeasurements:
    """The last block's measurements, per key, for the cores stepping that block."""

    def __init__(self) -> None:
        self._block: SampleBlock | None = None  # held, so its id cannot be reused
        self._entries: dict[Hashable, Measured] = {}

    def lookup(self, block: SampleBlock, key: Hashable) -> Measured | None:
        if block is not self._block:
            return None
        return self._entries.get(key)

    def store(self, block: SampleBlock, key: Hashable, measured: Measured) -> None:
        if block is not self._block:
            self._block, self._entries = block, {}
        self._entries[key] = measured


def measure(
    block: SampleBlock,
    model: MeterModel,
    supply: SupplyState,
    curve: ErrorCurve | None,
    calibration_error_pct: float,
    scratch: Scratch | None = None,
    *,
    series: IntArray | None = None,
) -> Measured:
    """The block as one meter measures it; ``supply`` carries over to the block's end.

    With ``scratch`` the arrays live in its buffers, valid until its next block. With
    ``series``, the caller's (4, n) per-sample registers to hand out (see
    :func:`measure_run`), the power is a new array, and the energies per element go
    into its L1 and L2 rows, where the registration leaves them (no copy).
    """
    els, n, dt_us = model.elements, block.n, block.dt_us
    volts = block.voltage_v if els == block.voltage_v.shape[0] else block.voltage_v[:els]
    # The inputs' extremes (the supply's and the status bits' tests): a two-element
    # meter sees both lines, whose ranges the block's validation found, so no pass is
    # needed while both lines stay above power-up (then each line's lowest is at
    # least the block's); else they are taken next to the pass that reads the inputs
    # for the power, while they are in cache.
    both = block.voltage_range_v if els == 2 else None
    if both is not None and both[0] >= supply.config.power_up_v:
        lowest_v, highest_v = [both[0], both[0]], both[1]
    else:
        lowest_v, highest_v = lowest_per_line(volts), highest(volts)
    powered = supply.run_lines(volts, dt_us, lowest_v)
    power_out = energy_out = None
    if scratch is not None:
        power_out, energy_out = scratch.block_buffers(els, n)
    if series is not None:
        power_out, energy_out = None, series[2 : 2 + els]
    p, amps, pf = element_power(block, model, curve, calibration_error_pct, out=power_out)
    seen = block.current_range_a if els == 2 and block.straight else None
    highest_a = highest(amps) if seen is None else seen[1]  # then amps are the block's
    extremes = InputExtremes(min(lowest_v), highest_v, highest_a)
    return Measured(
        supply=powered,
        spans=[(0, n, True)] if powered is None else _power_spans(powered),
        supply_after=(supply.powered, supply.dip_us),
        power_w=p,
        current_a=amps,
        pf=pf,
        energy_uj=energy_uj(p, dt_us, out=energy_out),  # µJ per sample and element
        extremes=extremes,
        scratch=scratch,
    )


def _power_spans(powered: BoolArray) -> list[tuple[int, int, bool]]:
    """(a, b, powered) of each run of constant power state, in order."""
    n = powered.shape[0]
    cuts = (np.flatnonzero(powered[1:] != powered[:-1]) + 1).tolist()
    return [(a, b, bool(powered[a])) for a, b in itertools.pairwise([0, *cuts, n])]


def measure_run(
    block: SampleBlock,
    measured: Measured,
    model: MeterModel,
    mode: RegistrationMode,
    span: tuple[int, int],
    series: IntArray | None = None,
) -> PoweredRun:
    """Registration, status bits 0-9 and readings of the powered run ``span`` (a, b).

    Kept in ``measured`` for the other cores, unless ``series`` (this core's own
    per-sample registers) is being filled.
    """
    a, b = span
    p, amps, pf = measured.power_w, measured.current_a, measured.pf
    volts, freq, temp = block.voltage_v, block.frequency_hz, block.temperature_c
    energy = measured.energy_uj
    whole = a == 0 and b == block.n  # the usual run: the arrays as they are, no views
    if not whole:
        volts, amps, p, pf = volts[:, a:b], amps[:, a:b], p[:, a:b], pf[:, a:b]
        freq, temp, energy = freq[a:b], temp[a:b], energy[:, a:b]
    bits = line_status_bits(
        model.elements,
        volts,
        amps,
        p,
        pf,
        freq,
        temp,
        model.max_current_a,
        model.starting_current_a,
        measured.extremes if whole else None,
    )
    delivered_out = cum_out = None
    if measured.scratch is not None:  # (the running total never leaves the core's call)
        delivered_out, cum_out = measured.scratch.run_buffers(a, b)
    reg = register(
        energy,
        mode,
        None if series is None else series[:, a:b],
        out=delivered_out,
        no_export=never_reversed(bits),
        cum_out=cum_out,
    )
    readings = Readings.at(block, measured.power_w, b - 1, model.elements)
    run = PoweredRun(reg, reg.cum_uj, bits, readings)
    if series is None:
        measured.runs[span] = run
    return run
