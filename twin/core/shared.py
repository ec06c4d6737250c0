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
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from twin.core.models import MeterModel, RegistrationMode
from twin.core.readings import Readings
from twin.core.registration import Registered, register
from twin.core.samples import BoolArray, FloatArray, IntArray, SampleBlock
from twin.core.status import U32Array, line_status_bits


class PoweredRun(NamedTuple):
    """What one powered run of samples (a..b) registers, as every core sharing it sees it."""

    registered: Registered
    cum_uj: IntArray  # running total of registered.delivered
    bits: U32Array  # status bits 0-9 per sample (injected and boot bits are per core)
    readings: Readings  # the run's last sample


@dataclass(slots=True)
class Measured:
    """A block as a meter measures it (see the module docstring for what it depends on)."""

    supply: BoolArray  # powered per sample
    supply_after: tuple[bool, int]  # the supply's carried state after the block
    power_w: FloatArray  # (elements, n)
    current_a: FloatArray
    pf: FloatArray
    energy_uj: IntArray
    runs: dict[tuple[int, int], PoweredRun] = field(default_factory=dict)


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
    reg = register(measured.energy_uj[:, a:b], mode, None if series is None else series[:, a:b])
    bits = line_status_bits(
        model.elements,
        block.voltage_v[:, a:b],
        amps[:, a:b],
        p[:, a:b],
        pf[:, a:b],
        block.frequency_hz[a:b],
        block.temperature_c[a:b],
        model.max_current_a,
        model.starting_current_a,
    )
    readings = Readings.at(block, p, b - 1, model.elements)
    run = PoweredRun(reg, np.cumsum(reg.delivered), bits, readings)
    if series is None:
        measured.runs[span] = run
    return run
