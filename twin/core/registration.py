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
    p = block.voltage_v[:els] * amps
    p *= pf
    if _low(amps, model.starting_current_a):
        p = np.where(amps >= model.starting_current_a, p, 0.0)
    if curve is not None:
        p = p * curve.ratio(amps, np.abs(pf))
    if calibration_error_pct:
        p = p * (1.0 + calibration_error_pct / 100.0)
    return np.asarray(p, dtype=np.float64), amps, pf


def _low(values: FloatArray, threshold: float) -> bool:
    """Whether any value is below ``threshold`` (a broadcast constant costs one test)."""
    if values.ndim == 2 and values.shape[1] > 1 and values.strides[1] == 0:
        values = values[:, :1]
    return bool(values.size) and float(values.min()) < threshold


def energy_uj(power_w: FloatArray, dt_us: int) -> IntArray:
    """Energy per element and sample, rounded to whole microjoules (W x us)."""
    out = np.empty(power_w.shape, np.int64)
    # rint is exact to an integral float; the cast on output is then exact, in one pass.
    np.rint(power_w * dt_us, out=out, casting="unsafe")
    return out


class Registered(NamedTuple):
    """What one run of samples adds to each register: per sample delivered, totals."""

    delivered: IntArray  # per sample (µJ): what the pulse outputs and demand follow
    received_uj: int  # 0 unless bidirectional
    l1_uj: int
    l2_uj: int
    l1_received_uj: int
    l2_received_uj: int


def register(
    energy_uj: IntArray, mode: RegistrationMode, series: IntArray | None = None
) -> Registered:
    """Split per-element energies (elements, m) into the registers' increments.

    ``series``, a zeroed (4, m) array, receives the per-sample increments of the
    delivered, received, L1 and L2 registers when given.
    """
    e1 = energy_uj[0]
    e2 = energy_uj[1] if energy_uj.shape[0] == 2 else None
    if int(energy_uj.min()) >= 0:
        # Nothing exported: every clamp is the identity and nothing is received,
        # whatever the mode (the usual case, at a third of the passes).
        if series is None:
            delivered = e1.copy() if e2 is None else e1 + e2
        else:
            series[2] = e1
            if e2 is None:
                series[0] = e1
            else:
                series[3] = e2
                np.add(e1, e2, out=series[0])
            delivered = series[0]
        return Registered(
            delivered=delivered,
            received_uj=0,
            l1_uj=int(e1.sum()),
            l2_uj=0 if e2 is None else int(e2.sum()),
            l1_received_uj=0,
            l2_received_uj=0,
        )
    out = np.zeros((4, e1.shape[0]), np.int64) if series is None else series
    net = e1 if e2 is None else e1 + e2
    np.maximum(e1, 0, out=out[2])
    if e2 is not None:
        np.maximum(e2, 0, out=out[3])
    if mode is RegistrationMode.PER_ELEMENT_CLAMP:
        np.add(out[2], out[3], out=out[0])
    else:
        np.maximum(net, 0, out=out[0])
    if mode is RegistrationMode.BIDIRECTIONAL:
        np.maximum(-net, 0, out=out[1])
    return Registered(
        delivered=out[0],
        received_uj=int(out[1].sum()),
        l1_uj=int(out[2].sum()),
        l2_uj=int(out[3].sum()),
        l1_received_uj=int(np.maximum(-e1, 0).sum()),
        l2_received_uj=0 if e2 is None else int(np.maximum(-e2, 0).sum()),
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
