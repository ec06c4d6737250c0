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

import functools
from collections.abc import Sequence

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
    halves_uj: Sequence[int],
    time0_us: int,
    dt_us: int,
) -> list[tuple[FloatArray, BoolArray, int]]:
    """Per half period of ``halves_uj``: times and new states of every crossing of a
    multiple of it, and the first sample holding two or more of them (-1 if none).

    ``cum_uj`` is ``cumsum(delivered_uj)`` for the run starting at ``energy0_uj``.
    The multiples of a half period that is a multiple of a smaller one are among
    the smaller one's (the Mini Meter's 50 and 500 Wh among the 5 Wh), so their
    crossings are every m-th of its crossings: one search serves all the outputs.
    """
    searched, plan = _plan(tuple(halves_uj))
    grids = []
    for base in searched:  # (a loop: a list comprehension is a call of its own)
        grids.append(_crossings(energy0_uj, delivered_uj, cum_uj, base, time0_us, dt_us))
    out: list[tuple[FloatArray, BoolArray, int]] = []
    for grid, step, same in plan:
        if same >= 0:  # two outputs of one half period (a 100 Wh counter and Kh 100)
            out.append(out[same])
            continue
        j_first, samples, times, crowded = grids[grid]
        first = j_first  # index of the first multiple of this half period crossed
        if step > 1:  # its multiples are every step-th of the searched one's
            skip = -j_first % step
            times = times[skip::step]
            if crowded:
                samples = samples[skip::step]
            first = (j_first + skip) // step
        first_crowded = -1
        if crowded:  # else no sample holds two of the base's crossings, nor of these
            repeated = (samples[1:] == samples[:-1]).nonzero()[0]
            first_crowded = int(samples[repeated[0]]) if repeated.size else -1
        out.append((times, _alternating(first % 2 == 1, times.shape[0]), first_crowded))
    return out


#: Edge states alternate: closed, open, closed, ... (read-only, shared by every edge set
#: of up to this many edges; a day of the core bench's load holds 11,000 of the 10 Wh output).
_SHARED_STATES = 2**16
_ALTERNATING: BoolArray = np.arange(_SHARED_STATES) % 2 == 0
_ALTERNATING.flags.writeable = False


def _alternating(closes_first: bool, count: int) -> BoolArray:
    """The states after ``count`` edges, the first of them closing the output when
    ``closes_first`` (a crossing closes it when its multiple's index is odd)."""
    start = 0 if closes_first else 1
    if start + count <= _ALTERNATING.shape[0]:
        return _ALTERNATING[start : start + count]  # a view: no array to make and fill
    closed = np.zeros(count, np.bool_)
    closed[start::2] = True
    return closed


@functools.cache
def _plan(
    halves_uj: tuple[int, ...],
) -> tuple[tuple[int, ...], tuple[tuple[int, int, int], ...]]:
    """(the half periods searched, and per half: the index of the search serving it,
    its multiple of that one, and the index of an equal half before it or -1).

    A half is served by the smallest one searched before that divides it, else
    searched itself."""
    searched: list[int] = []
    plan = []
    for i, half in enumerate(halves_uj):
        base = next((b for b in sorted(searched) if half % b == 0), None)
        if base is None:
            base = half
            searched.append(half)
        same = halves_uj.index(half)
        plan.append((searched.index(base), half // base, same if same < i else -1))
    return tuple(searched), tuple(plan)


@functools.cache
def searched_halves(halves_uj: tuple[int, ...]) -> tuple[int, ...]:
    """The half periods whose crossings :func:`edges` searches for ``halves_uj``: a run
    that crosses no multiple of these crosses none of ``halves_uj``'s either."""
    return _plan(halves_uj)[0]


def _crossings(
    energy0_uj: int,
    delivered_uj: IntArray,
    cum_uj: IntArray,
    half_uj: int,
    time0_us: int,
    dt_us: int,
) -> tuple[int, IntArray, FloatArray, bool]:
    """(index j of the first multiple j x half crossed, sample and time of each crossing,
    whether a sample holds two or more of them)."""
    whole, rest_uj = divmod(energy0_uj, half_uj)  # rest: how far past a multiple it starts
    j_first = whole + 1
    count = (rest_uj + cum_uj.item(-1)) // half_uj  # multiples crossed in the run
    # Offsets of the crossed multiples from the run's start energy: small numbers,
    # whatever the register holds.
    first_uj = half_uj - rest_uj
    offsets = np.arange(first_uj, first_uj + count * half_uj, half_uj, dtype=np.int64)
    sample, crowded = _crossing_samples(cum_uj, rest_uj, half_uj, offsets)
    inside = delivered_uj[sample]
    before = cum_uj[sample]
    before -= inside  # energy of the run before the crossing's sample
    frac = np.subtract(offsets, before, out=before) / inside
    # Integer microseconds first, so the times do not depend on how blocks were split.
    start_us = sample * dt_us
    start_us += time0_us
    frac *= dt_us
    times = np.add(start_us, frac, out=frac)
    times /= 1e6
    return j_first, sample, times, crowded


#: Below one crossing per this many samples, a binary search per crossing beats one
#: integer division per sample (a day at 1 s delivering 1.5 kWh: 300 crossings of the
#: 5 Wh half period in 86,400 samples, ~8 us against ~80 us; at 7,000, ~140 against ~90).
SEARCH_SAMPLES_PER_CROSSING = 32


def _crossing_samples(
    cum_uj: IntArray, rest_uj: int, half_uj: int, offsets: IntArray
) -> tuple[IntArray, bool]:
    """The sample of each crossing, in order, and whether one holds two or more.

    ``offsets`` are the crossed multiples' energies from the run's start (m x half -
    rest for m = 1..count): multiple m is crossed in the first sample whose running
    total reaches its offset. Few crossings are searched for in the running total; many
    are found where ``floor((rest + cum) / half)``, the crossings so far, steps: the
    samples holding crossings, each repeated by its step (one integer division per
    sample: about half the time of a binary search per crossing at one crossing in ten
    samples).
    """
    count = offsets.shape[0]
    if count == 0:
        return np.empty(0, np.int64), False
    if count * SEARCH_SAMPLES_PER_CROSSING < cum_uj.shape[0]:
        found = np.searchsorted(cum_uj, offsets)  # the first sample reaching each
        return found, bool((found[1:] == found[:-1]).any())
    # Unsigned: the running total never decreases from zero, and numpy divides
    # uint64 by a constant in half the time of int64 (no sign fix-up).
    so_far = np.add(cum_uj, rest_uj).view(np.uint64)
    so_far //= np.uint64(half_uj)
    stepped = (so_far[1:] != so_far[:-1]).nonzero()[0]  # (np.flatnonzero adds a wrapper)
    stepped += 1
    if so_far.item(0):
        stepped = np.concatenate((np.zeros(1, np.int64), stepped))
    if stepped.shape[0] == count:  # one crossing per such sample: the usual case
        return stepped, False
    steps = so_far[stepped].view(np.int64)
    steps[1:] -= so_far[stepped[:-1]].view(np.int64)
    return np.repeat(stepped, steps), True
