"""Pulse outputs, mechanical counter and load LED, as pure functions of energy.

An output of constant Kh (Wh) is closed while floor(E / (Kh/2)) is odd, E being
the delivered energy register: "5 Wh on, 5 Wh off" for the 10 Wh output. So its
state, and the number of closures since energy zero, are functions of E alone,
which makes them identical however the samples are split into blocks, and a
restart from the store resumes them exactly. A clear of the pulse counts is an
offset. The counter advances one count per 100 or 1000 Wh; its coil is energised
for the first half of each count. The load LED mirrors the 10 Wh output.

Edge times are interpolated within the sample in which E crosses a multiple of
Kh/2, assuming constant power during the sample.
"""

from __future__ import annotations

import numpy as np

from twin.core.types import BoolArray, FloatArray, IntArray

NWH_PER_WH = 1_000_000_000


def half_period_nwh(kh_wh: int) -> int:
    return kh_wh * NWH_PER_WH // 2


def closures(energy_nwh: int, kh_wh: int) -> int:
    """Closures (open -> closed transitions) since energy zero."""
    return (energy_nwh // half_period_nwh(kh_wh) + 1) // 2


def is_closed(energy_nwh: int, kh_wh: int) -> bool:
    return (energy_nwh // half_period_nwh(kh_wh)) % 2 == 1


def counter_counts(energy_nwh: int, wh_per_count: int) -> int:
    return energy_nwh // (wh_per_count * NWH_PER_WH)


def counter_energised(energy_nwh: int, wh_per_count: int) -> bool:
    # The counter coil is pulsed once per count; modelled as 50 % duty by energy,
    # closed during the second half of each count like the isolated outputs.
    return is_closed(energy_nwh, wh_per_count)


def edges(
    energy0_nwh: int,
    delivered_nwh: IntArray,
    cum_nwh: IntArray,
    half_nwh: int,
    time0_us: int,
    dt_us: int,
) -> tuple[FloatArray, BoolArray]:
    """Times and new states of every crossing of a multiple of ``half_nwh``.

    ``cum_nwh`` is ``cumsum(delivered_nwh)`` for the run starting at ``energy0_nwh``.
    """
    _, r0 = divmod(energy0_nwh, 2 * half_nwh)  # keep the parity, work in small numbers
    k_end = (r0 + cum_nwh) // half_nwh
    k_start = np.empty_like(k_end)
    k_start[0] = r0 // half_nwh
    k_start[1:] = k_end[:-1]
    crossings = k_end - k_start
    idx = np.flatnonzero(crossings)
    if idx.size == 0:
        return np.empty(0), np.empty(0, dtype=bool)
    counts = crossings[idx]
    sample = np.repeat(idx, counts)
    # k of each crossed boundary: k_start + 1 .. k_end for each sample
    first = np.repeat(k_start[idx] + 1, counts)
    offset = np.arange(sample.shape[0]) - np.repeat(np.cumsum(counts) - counts, counts)
    k = first + offset
    e_before = r0 + cum_nwh[sample] - delivered_nwh[sample]
    frac = (k * half_nwh - e_before) / delivered_nwh[sample]
    # Integer microseconds first, so the times do not depend on how blocks were split.
    times = ((time0_us + sample * dt_us) + frac * dt_us) / 1e6
    return times, (k % 2) == 1
