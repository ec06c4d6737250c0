"""Pulse outputs, mechanical counter and load LED, as pure functions of energy.

An output of constant Kh (Wh) is closed while floor(E / (Kh/2)) is odd, E being
the delivered energy register: "5 Wh on, 5 Wh off" for the 10 Wh output. So its
state, and the number of closures since energy zero, are functions of E alone,
which makes them identical however the samples are split into blocks, and a
restart from the store resumes them exactly. A clear of the pulse counts is an
offset. The counter advances one count per 100 or 1000 Wh; its coil is energised
for the first half of each count. The load LED mirrors the 10 Wh output.

Edge times are interpolated within the sample in which E crosses a multiple of
Kh/2, assuming constant power during the sample. When a sample holds two or more
edges of an output, the step is coarser than that output's half period: the edge
times are still exact for constant power, but a load varying within the sample
could not be represented, so the core reports it once per output.
"""

from __future__ import annotations

import numpy as np

from twin.core.samples import BoolArray, FloatArray, IntArray

UJ_PER_WH = 3_600_000_000  # microjoules: W x us, exact for the usual inputs


def half_period_uj(kh_wh: int) -> int:
    return kh_wh * UJ_PER_WH // 2


def closures(energy_uj: int, kh_wh: int) -> int:
    """Closures (open -> closed transitions) since energy zero."""
    return (energy_uj // half_period_uj(kh_wh) + 1) // 2


def is_closed(energy_uj: int, kh_wh: int) -> bool:
    return (energy_uj // half_period_uj(kh_wh)) % 2 == 1


def counter_counts(energy_uj: int, wh_per_count: int) -> int:
    return energy_uj // (wh_per_count * UJ_PER_WH)


def counter_energised(energy_uj: int, wh_per_count: int) -> bool:
    # The counter coil is pulsed once per count; modelled as 50 % duty by energy,
    # closed during the second half of each count like the isolated outputs.
    return is_closed(energy_uj, wh_per_count)


def edges(
    energy0_uj: int,
    delivered_uj: IntArray,
    cum_uj: IntArray,
    half_uj: int,
    time0_us: int,
    dt_us: int,
) -> tuple[FloatArray, BoolArray, int]:
    """Times and new states of every crossing of a multiple of ``half_uj``.

    ``cum_uj`` is ``cumsum(delivered_uj)`` for the run starting at ``energy0_uj``.
    The third value is the first sample holding two or more edges, or -1.
    """
    _, r0 = divmod(energy0_uj, 2 * half_uj)  # keep the parity, work in small numbers
    k_first = r0 // half_uj + 1
    k_last = (r0 + int(cum_uj[-1])) // half_uj
    if k_last < k_first:
        return np.empty(0), np.empty(0, dtype=bool), -1
    # Boundary k is crossed in the first sample whose running total reaches it
    # (delivered energy never decreases), so a binary search per edge replaces a
    # division per sample; samples come out in order, k ascending within each.
    k = np.arange(k_first, k_last + 1, dtype=np.int64)
    sample = np.searchsorted(cum_uj, k * half_uj - r0, side="left")
    repeated = np.flatnonzero(sample[1:] == sample[:-1])
    first_crowded = int(sample[repeated[0]]) if repeated.size else -1
    e_before = r0 + cum_uj[sample] - delivered_uj[sample]
    frac = (k * half_uj - e_before) / delivered_uj[sample]
    # Integer microseconds first, so the times do not depend on how blocks were split.
    times = ((time0_us + sample * dt_us) + frac * dt_us) / 1e6
    return times, (k % 2) == 1, first_crowded
