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

import functools
from typing import NamedTuple

import numpy as np

from twin.core import pulses
from twin.core.accuracy import ErrorCurve
from twin.core.events import PulseOutput
from twin.core.limits import ABSOLUTE_MAX_CURRENT_A, ABSOLUTE_MAX_VOLTAGE_V, KH_WH
from twin.core.models import MeterModel, RegistrationMode
from twin.core.samples import BoolArray, FloatArray, IntArray, SampleBlock
from twin.core.wiring import element_inputs

#: The isolated outputs in Kh order (KH_WH), then the counter.
KH_OUTPUTS = (PulseOutput.KH_10, PulseOutput.KH_100, PulseOutput.KH_1000)
#: The outputs in the order :func:`output_edges` and :func:`output_halves` give them.
OUTPUTS = (*KH_OUTPUTS, PulseOutput.COUNTER)


def element_power(
    block: SampleBlock,
    model: MeterModel,
    curve: ErrorCurve | None,
    calibration_error_pct: float = 0.0,
    out: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Measured real power, current seen and cos(delta) per element, shape (els, n).

    The power goes into ``out`` (els, n) when given, a buffer the caller reuses.
    The factors after V x I x cos(delta) are positive (an accuracy ratio of at
    least 0.49, a calibration factor of at least 0.5), so a power is negative only
    where its cos(delta) is: ``status`` relies on that.
    """
    els = model.elements
    amps, pf = element_inputs(block, els)
    volts = block.voltage_v if els == block.voltage_v.shape[0] else block.voltage_v[:els]
    p = np.multiply(volts, amps, out=out)
    if not _all_one(pf):  # x * 1.0 is x: a unity power factor costs no pass
        p *= pf
    # No sample below the starting current when none of the block's currents is
    # (its range, from the validation, covers what a correctly wired CT sees).
    seen = block.current_range_a if block.straight else None
    if (seen is None or seen[0] < model.starting_current_a) and _low(
        amps, model.starting_current_a
    ):
        np.copyto(p, 0.0, where=amps < model.starting_current_a)
    if curve is not None:
        curve.scale(p, amps, pf)
    if calibration_error_pct:
        p *= 1.0 + calibration_error_pct / 100.0
    return p, amps, pf


def _all_one(values: FloatArray) -> bool:
    """Whether a broadcast constant per row is exactly 1.0 (other arrays: not tested)."""
    if values.ndim != 2 or values.shape[1] < 2 or values.strides[1] != 0:
        return False
    # One or two elements: their first and last rows are every row.
    return bool(values.item(0, 0) == 1.0 == values.item(values.shape[0] - 1, 0))


def _low(values: FloatArray, threshold: float) -> bool:
    """Whether any value is below ``threshold`` (a broadcast constant costs one test)."""
    if values.ndim == 2 and values.shape[1] > 1 and values.strides[1] == 0:
        values = values[:, :1]
    return bool(values.size) and float(values.min()) < threshold


#: Adding 1.5 * 2**52 to a float of magnitude below 2**51 rounds it to an integer
#: (to nearest, ties to even: as numpy.rint) that then sits in the low bits of the
#: sum's IEEE representation, so subtracting the constant's bits as int64 is the cast.
_ROUND_MAGIC = 1.5 * 2.0**52
_ROUND_MAGIC_BITS = int(np.array(_ROUND_MAGIC).view(np.int64))
_ROUND_MAGIC_LIMIT = 2.0**51
#: No sample's power can exceed this: every input at its bound, times the largest
#: accuracy ratio (offset, slope and PF terms with a ±50 % calibration error, 1.51)
#: and an injected ±50 % calibration error on top (1.5), rounded up to 4.
_MAX_POWER_W = ABSOLUTE_MAX_VOLTAGE_V * ABSOLUTE_MAX_CURRENT_A * 4.0
#: Below this many values one numpy call beats three.
_ROUND_MAGIC_MIN = 1024


def energy_uj(power_w: FloatArray, dt_us: int, out: IntArray | None = None) -> IntArray:
    """Energy per element and sample, rounded to whole microjoules (W x us).

    Into ``out`` (int64, power's shape) when given, a buffer the caller reuses.
    """
    if out is None:
        out = np.empty(power_w.shape, np.int64)
    if power_w.size >= _ROUND_MAGIC_MIN and _MAX_POWER_W * dt_us < _ROUND_MAGIC_LIMIT:
        # numpy's float64 -> int64 cast is a slow scalar loop; three vector passes
        # in place give the same integers (the magic constant above).
        scaled = out.view(np.float64)
        np.multiply(power_w, dt_us, out=scaled)
        scaled += _ROUND_MAGIC
        out -= _ROUND_MAGIC_BITS
        return out
    # rint is exact to an integral float; the cast on output is then exact, in one pass.
    np.rint(power_w * dt_us, out=out, casting="unsafe")
    return out


class Registered(NamedTuple):
    """What one run of samples adds to each register: per sample delivered, totals."""

    delivered: IntArray  # per sample (µJ): what the pulse outputs and demand follow
    cum_uj: IntArray  # running total of delivered
    received_uj: int  # 0 unless bidirectional
    l1_uj: int
    l2_uj: int
    l1_received_uj: int
    l2_received_uj: int


def register(
    energy_uj: IntArray,
    mode: RegistrationMode,
    series: IntArray | None = None,
    out: IntArray | None = None,
    *,
    no_export: bool = False,
    cum_out: IntArray | None = None,
) -> Registered:
    """Split per-element energies (elements, m) into the registers' increments.

    ``series``, a (4, m) array, receives the per-sample increments of the delivered,
    received, L1 and L2 registers when given (every value written; its L1 and L2 rows
    may hold ``energy_uj`` itself, which is then not copied); otherwise the delivered
    energy per sample goes into ``out`` (m,) when given, a buffer the caller reuses.
    The running total goes into ``cum_out`` (m,) when given.
    ``no_export``: the caller has shown that no power is negative, so no energy is
    (a rounded non-negative product), and the test is skipped.
    """
    e1 = energy_uj[0]
    e2 = energy_uj[1] if energy_uj.shape[0] == 2 else None
    if no_export or int(energy_uj.min()) >= 0:
        # Nothing exported: every clamp is the identity and nothing is received,
        # whatever the mode (the usual case, at a third of the passes).
        if series is None:
            # One element: its energies are the delivered ones (read, never written).
            delivered = e1 if e2 is None else np.add(e1, e2, out=out)
        else:
            series[1] = 0
            _put(series[2], e1)
            if e2 is None:
                series[0] = e1
                series[3] = 0
            else:
                _put(series[3], e2)
                np.add(e1, e2, out=series[0])
            delivered = series[0]
        # The ufuncs' own accumulate and reduce: np.cumsum and ndarray.sum add a
        # Python wrapper each, and integer sums are the same in any order.
        cum = np.add.accumulate(delivered, out=cum_out)
        l1_uj = int(np.add.reduce(e1))
        return Registered(
            delivered=delivered,
            cum_uj=cum,
            received_uj=0,
            l1_uj=l1_uj,
            l2_uj=0 if e2 is None else int(cum[-1]) - l1_uj,  # delivered is L1 + L2
            l1_received_uj=0,
            l2_received_uj=0,
        )
    regs = np.zeros((4, e1.shape[0]), np.int64) if series is None else series
    net = e1 if e2 is None else e1 + e2
    # Taken before the clamps below, which may write over e1 and e2 (see ``series``).
    l1_received_uj = int(np.maximum(-e1, 0).sum())
    l2_received_uj = 0 if e2 is None else int(np.maximum(-e2, 0).sum())
    if series is not None:
        regs[1] = 0  # what is not written below: received, and L2 of one element
        if e2 is None:
            regs[3] = 0
    np.maximum(e1, 0, out=regs[2])
    if e2 is not None:
        np.maximum(e2, 0, out=regs[3])
    if mode is RegistrationMode.PER_ELEMENT_CLAMP:
        np.add(regs[2], regs[3], out=regs[0])
    else:
        np.maximum(net, 0, out=regs[0])
    if mode is RegistrationMode.BIDIRECTIONAL:
        np.maximum(-net, 0, out=regs[1])
    return Registered(
        delivered=regs[0],
        cum_uj=np.cumsum(regs[0], out=cum_out),
        received_uj=int(regs[1].sum()),
        l1_uj=int(regs[2].sum()),
        l2_uj=int(regs[3].sum()),
        l1_received_uj=l1_received_uj,
        l2_received_uj=l2_received_uj,
    )


def _put(row: IntArray, values: IntArray) -> None:
    """``row[:] = values``, unless they are the same memory already."""
    if not np.may_share_memory(row, values):
        row[...] = values


def output_edges(
    energy0_uj: int,
    delivered_uj: IntArray,
    cum_uj: IntArray,
    time0_us: int,
    dt_us: int,
    counter_wh_per_count: int,
) -> list[tuple[FloatArray, BoolArray, int]]:
    """Edges of every output during a run that starts at delivered energy ``energy0_uj``.

    Per output of :data:`OUTPUTS`, in order: edge times, new states and the first
    sample holding two or more edges (-1 if none; see ``pulses.edges``).
    """
    halves = output_halves(counter_wh_per_count)
    return pulses.edges(energy0_uj, delivered_uj, cum_uj, halves, time0_us, dt_us)


@functools.cache
def output_halves(counter_wh_per_count: int) -> tuple[int, ...]:
    """Half periods (µJ) of the isolated outputs in Kh order, then of the counter."""
    return tuple(pulses.half_period_uj(kh) for kh in (*KH_WH, counter_wh_per_count))


@functools.cache
def output_searched_halves(counter_wh_per_count: int) -> tuple[int, ...]:
    """The half periods whose multiples :func:`output_edges` searches: where a run
    crosses none of them, no output has an edge (see ``pulses.searched_halves``)."""
    return pulses.searched_halves(output_halves(counter_wh_per_count))
