"""The profile's blocks sampled ahead by a forked process into shared memory
(twin.batch.samplesahead): the same blocks as the sampler's own, whatever happens
to the child."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
from typing import Any

import numpy as np
import pytest

from twin.batch.eventlog import event_lines
from twin.batch.report import summary_json
from twin.batch.samplesahead import (
    MIN_AHEAD_SAMPLES,
    SLOTS,
    AheadSampler,
    DriveRun,
    pack,
    sampled_ahead,
    unpack,
    worth_forking,
)
from twin.batch.simulate import SimResult, SimSettings, simulate
from twin.core import Command, SampleBlock
from twin.drive import drive
from twin.forking import can_fork
from twin.loadprofile import Profile, Sampler, load_profile

needs_fork = pytest.mark.skipif(
    not can_fork(), reason="no fork here (not Linux, one core, or another thread running)"
)


def digest(block: SampleBlock) -> tuple[Any, ...]:
    """Every field of a block: each array's dtype, shape, strides, flags and bytes (a
    broadcast constant has a zero stride), each other value as it is."""
    out: list[Any] = []
    for f in dataclasses.fields(block):
        value = getattr(block, f.name)
        if isinstance(value, np.ndarray):
            data = hashlib.sha1(np.ascontiguousarray(value).tobytes()).hexdigest()
            value = (value.dtype.str, value.shape, value.strides, value.flags.writeable, data)
        out.append((f.name, value))
    return tuple(out)


class Witness:
    """A core that keeps what it is given: each block's digest (never the block, whose
    slot the ring may reuse) and each command, in order. ``on_block(blocks so far,
    block)`` runs after each block."""

    def __init__(self, on_block: Any = None) -> None:
        self.seen: list[Any] = []
        self.blocks = 0
        self.on_block = on_block

    def advance(self, block: SampleBlock) -> list[None]:
        self.seen.append(digest(block))
        self.blocks += 1
        if self.on_block is not None:
            self.on_block(self.blocks, block)
        return []

    def apply(self, command: Command) -> list[None]:
        self.seen.append(command)
        return []


def witness(sampler: Sampler, runs: list[DriveRun], core: Witness | None = None) -> list[Any]:
    core = core or Witness()
    for run in runs:
        for _ in drive(core, sampler, *run):
            pass
    return core.seen


def plan(days: float, step_s: float, max_block: int = 3_600) -> list[DriveRun]:
    """Whole steps in blocks of ``max_block``, then a shorter last step when the step
    does not divide the duration (as simulate does)."""
    n = int(days * 86_400 // step_s)
    tail_s = round(days * 86_400 - n * step_s, 6)
    return [DriveRun(0.0, step_s, n, max_block)] + (
        [DriveRun(n * step_s, tail_s, 1)] if tail_s else []
    )


CASES = [
    ("residential-year", 0.5, 1.0),  # noise; voltages broadcast per line, currents not
    ("meter-faults", 0.5, 0.7),  # commands split blocks; a shorter last step
    ("brownout-outage", 0.25, 0.3),  # outages: nothing broadcast
    ("ct-wrong-phase", 0.2, 1.0),  # CT lines given per sample
    ("ct-reversed", 0.2, 7.0),
    ("wye-120-208", 0.2, 1.3),
]


@pytest.mark.parametrize(("name", "days", "step_s"), CASES)
def test_pack_and_unpack_give_the_block_back(name: str, days: float, step_s: float) -> None:
    """Without a fork: the same values, dtypes, shapes, strides (broadcasts stay
    broadcast), read-only, and the block's scalars, for every block of the plan."""
    sampler = load_profile(name).sampler()
    slot = np.zeros(8 << 20, np.uint8)
    runs = plan(days, step_s)
    for block in _blocks(sampler, runs):
        place = pack(slot, block)
        assert place is not None
        assert digest(unpack(slot, place)) == digest(block)


def _blocks(sampler: Sampler, runs: list[DriveRun]) -> list[SampleBlock]:
    got: list[SampleBlock] = []

    class Keep(Witness):
        def advance(self, block: SampleBlock) -> list[None]:
            got.append(block)
            return []

    witness(sampler, runs, Keep())
    return got


def test_a_block_that_does_not_fit_its_slot_is_not_packed() -> None:
    block = load_profile("brownout-outage").sampler().block(0.0, 1.0, 1_000)
    assert pack(np.zeros(20_000, np.uint8), block) is None


def test_only_long_runs_of_day_sized_blocks_fork() -> None:
    assert worth_forking([DriveRun(0.0, 1.0, MIN_AHEAD_SAMPLES, 86_400)])
    assert not worth_forking([DriveRun(0.0, 1.0, MIN_AHEAD_SAMPLES - 2, 86_400)])
    assert not worth_forking([DriveRun(0.0, 1.0, 10 * MIN_AHEAD_SAMPLES, 2 * 86_400)])


@needs_fork
@pytest.mark.parametrize(("name", "days", "step_s"), CASES)
def test_the_childs_blocks_are_the_samplers_own(name: str, days: float, step_s: float) -> None:
    profile = load_profile(name)
    runs = plan(days, step_s)
    ahead = AheadSampler(profile, 7, runs, wait=True)
    try:
        got = witness(ahead, runs)
    finally:
        ahead.stop()
    assert got == witness(profile.sampler(7), runs)
    blocks = sum(isinstance(x, tuple) for x in got)
    assert ahead.served == blocks - 1  # all but the first, sampled by the run meanwhile


@needs_fork
def test_a_killed_child_leaves_the_run_to_sample_the_rest() -> None:
    profile = load_profile("meter-faults")
    runs = plan(0.5, 0.7)
    ahead = AheadSampler(profile, 3, runs, wait=True)
    pid = ahead.pid
    assert pid is not None

    def kill(count: int, block: SampleBlock) -> None:
        if count == 10:
            os.kill(pid, signal.SIGKILL)

    try:
        got = witness(ahead, runs, Witness(kill))
    finally:
        ahead.stop()
    assert got == witness(profile.sampler(3), runs)
    assert ahead.pid is None
    assert 9 <= ahead.served < sum(isinstance(x, tuple) for x in got) - 1


@needs_fork
def test_a_child_killed_before_it_sends_anything_blocks_nothing() -> None:
    profile = load_profile("residential-year")
    runs = plan(0.5, 1.0)
    ahead = AheadSampler(profile, 1, runs, wait=True)
    assert ahead.pid is not None
    os.kill(ahead.pid, signal.SIGKILL)
    try:
        got = witness(ahead, runs)
    finally:
        ahead.stop()
    assert got == witness(profile.sampler(1), runs)
    assert ahead.served == 0


@needs_fork
@pytest.mark.parametrize("freeze", [False, True])
def test_the_run_never_waits_for_the_child(freeze: bool) -> None:
    """Without ``wait`` the run samples what the child has not sent: a frozen child
    (alive, never sending again) holds nothing up, and the blocks are the same
    whichever process made them."""
    profile = load_profile("meter-faults")
    runs = plan(0.5, 0.7)
    ahead = AheadSampler(profile, 3, runs)
    assert ahead.pid is not None
    if freeze:
        os.kill(ahead.pid, signal.SIGSTOP)
    try:
        got = witness(ahead, runs)
    finally:
        ahead.stop()
    assert got == witness(profile.sampler(3), runs)
    if freeze:  # at most what it sent before it froze
        assert ahead.served <= SLOTS


@needs_fork
def test_a_block_still_held_is_never_overwritten() -> None:
    """A caller keeping a block keeps its slot: the child cannot reuse it, so the run
    samples from there on itself, and the kept block keeps its values."""
    profile = load_profile("residential-year")
    runs = plan(0.5, 1.0)
    kept: list[tuple[SampleBlock, Any]] = []

    def keep(count: int, block: SampleBlock) -> None:
        if count == 3:
            kept.append((block, digest(block)))

    ahead = AheadSampler(profile, 2, runs, wait=True)
    try:
        got = witness(ahead, runs, Witness(keep))
    finally:
        ahead.stop()
    block, seen = kept[0]
    assert digest(block) == seen
    assert got == witness(profile.sampler(2), runs)
    assert 2 <= ahead.served < len(got) - 1


@needs_fork
def test_an_error_of_the_sampler_is_raised_in_the_run_at_its_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child fails at a block (and exits); the run samples that block itself and
    raises the sampler's own error there, after the blocks before it."""
    plain_block = Sampler.block

    def failing(self: Sampler, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        if t0_s >= 20 * 3_600:
            raise ValueError("current_a: 999 out of range; expected 0..200 A")
        return plain_block(self, t0_s, dt_s, n)

    monkeypatch.setattr(Sampler, "block", failing)
    profile = load_profile("residential-year")
    runs = plan(1.0, 1.0)
    core = Witness()
    ahead = AheadSampler(profile, 2, runs, wait=True)
    with pytest.raises(ValueError, match="current_a: 999 out of range"):
        try:
            witness(ahead, runs, core)
        finally:
            ahead.stop()
    assert len(core.seen) == 20
    assert ahead.served == 19


def test_without_fork_or_for_a_short_run_the_sampler_is_the_plain_one() -> None:
    profile = load_profile("residential-year")
    long_run = [DriveRun(0.0, 1.0, MIN_AHEAD_SAMPLES, 86_400)]
    with sampled_ahead(profile, None, long_run, fork=False) as sampler:
        assert type(sampler) is Sampler
    with sampled_ahead(profile, None, [DriveRun(0.0, 1.0, 86_400, 86_400)], True) as sampler:
        assert type(sampler) is Sampler


def result_bytes(result: SimResult) -> tuple[Any, ...]:
    columns = {k: (v.dtype.str, v.tobytes()) for k, v in result.columns.items()}
    return summary_json(result.summary), event_lines(result.events), columns


@needs_fork
@pytest.mark.parametrize(
    ("name", "days", "step_s", "seed"),
    [("meter-faults", 22.0, 0.7, None), ("brownout-outage", 10.0, 0.33, 5)],
)
def test_simulate_with_samples_ahead_gives_the_same_run(
    name: str, days: float, step_s: float, seed: int | None
) -> None:
    """Commands, outages and a shorter last step: the same summary, events and series."""
    profile: Profile = load_profile(name)
    settings = SimSettings(duration_s=days * 86_400, step_s=step_s, seed=seed, interval_s=600)
    assert worth_forking(plan(days, step_s, 86_400))
    ahead = simulate(profile, settings, samples_ahead=True)
    assert result_bytes(ahead) == result_bytes(simulate(profile, settings))
