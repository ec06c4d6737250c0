"""Registration: from samples to integer microjoules per register, and pulse edges.

Real power per element is P = V·I·cos(delta), V its line's voltage and I, delta
the current its CT sees and its angle (see ``wiring``), zero below the starting
current (no creep), scaled by the accuracy model and by an injected calibration
error while one is active. Energy per sample is rounded to integer
microjoules (W x us), so every register is an exact integer sum of those (Python
ints: no overflow, no drift) and the result does not depend on how samples are
split into blocks.

The registration mode decides what the delivered register (and so the pulse
outputs) counts: ``sum_then_clamp`` the positive part of L1+L2, ``per_element_clamp``
the positive part of each element, ``bidirectional`` the positive part of L1+L2
as delivered and the negative part as received. Per-line registers always count
each element's positive part (and keep its negative part, for restores).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from twin.core import pulses
from twin.core.accuracy import ErrorCurve
from twin.core.events import PulseOutput
from twin.core.limits import KH_WH
from twin.core.models import MeterModel, RegistrationMode
from twin.core.samples import BoolArray, FloatArray, IntArray, SampleBlock
from twin.core.wiring import element_inputs

#: The isolated outputs in Kh order (KH_WH), then the counter.
KH_OUTPUTS = (PulseOutput.KH_10, PulseOutput.KH_100, PulseOutput.KH_1000)


def element_power(
    block: SampleBlock,
    model: MeterModel,
    curve: ErrorCurve | None,
    calibration_error_pct: float = 0.0,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Measured real power, current seen and cos(delta) per element, shape (els, n)."""
    els = model.elements
    amps, pf = element_inputs(block, els)
    p = block.voltage_v[:els] * amps * pf
    p = np.where(amps >= model.starting_current_a, p, 0.0)
    if curve is not None:
        p = p * curve.ratio(amps, np.abs(pf))
    if calibration_error_pct:
        p = p * (1.0 + calibration_error_pct / 100.0)
    return np.asarray(p, dtype=np.float64), amps, pf


class Registered(NamedTuple):
    """What one run of samples adds to each register, per sample (µJ)."""

    delivered: IntArray
    received: IntArray | None  # None unless bidirectional
    l1: IntArray
    l2: IntArray | None  # None on a single-element meter
    l1_received: IntArray
    l2_received: IntArray | None


def register(energy_uj: IntArray, mode: RegistrationMode) -> Registered:
    """Split per-element energies (elements, m) into the registers' increments."""
    e1 = energy_uj[0]
    e2 = energy_uj[1] if energy_uj.shape[0] == 2 else None
    net = e1 if e2 is None else e1 + e2
    if mode is RegistrationMode.PER_ELEMENT_CLAMP:
        delivered = np.maximum(e1, 0) if e2 is None else np.maximum(e1, 0) + np.maximum(e2, 0)
    else:
        delivered = np.maximum(net, 0)
    return Registered(
        delivered=delivered,
        received=np.maximum(-net, 0) if mode is RegistrationMode.BIDIRECTIONAL else None,
        l1=np.maximum(e1, 0),
        l2=None if e2 is None else np.maximum(e2, 0),
        l1_received=np.maximum(-e1, 0),
        l2_received=None if e2 is None else np.maximum(-e2, 0),
    )


def output_edges(
    energy0_uj: int,
    delivered_uj: IntArray,
    cum_uj: IntArray,
    time0_us: int,
    dt_us: int,
    counter_wh_per_count: int,
) -> list[tuple[PulseOutput, FloatArray, BoolArray, int]]:
    """Edges of every output during a run that starts at delivered energy ``energy0_uj``.

    Per output: edge times, new states and the first sample holding two or more
    edges (-1 if none; see ``pulses.edges``).
    """
    halves = [pulses.half_period_uj(kh) for kh in KH_WH]
    halves.append(pulses.half_period_uj(counter_wh_per_count))
    outputs = (*KH_OUTPUTS, PulseOutput.COUNTER)
    return [
        (output, *pulses.edges(energy0_uj, delivered_uj, cum_uj, half, time0_us, dt_us))
        for output, half in zip(outputs, halves, strict=True)
    ]
