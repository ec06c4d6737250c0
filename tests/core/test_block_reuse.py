"""What the core keeps from block to block must never change a result.

To cut its fixed cost per block the core keeps things between blocks: views of its
reused buffers (per block size and run), the status bits of a uniform block (per
value and size), the frequency test of a constant frequency, the edge states of its
pulse outputs (views of one shared alternating array, up to its length), and the
demand closes' buffer. Each test changes what those depend on between blocks (sizes,
outages, frequencies, more edges than the shared array holds, demand settings) and
compares with a path that keeps nothing: measurements made fresh for a core that
shares them, or the same samples in short blocks.
"""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt

from tests.helpers import block_pieces, events_by_kind
from twin.core import (
    DemandConfig,
    DemandMethod,
    ErrorCleared,
    ErrorRaised,
    Event,
    MeterConfig,
    MeterCore,
    Reconfigure,
    SampleBlock,
    SharedMeasurements,
)


def load(
    n: int, seed: int, *, outage_at: int | None = None, hz: npt.ArrayLike = 60.0
) -> SampleBlock:
    rng = np.random.default_rng(seed)
    amps = rng.uniform(2.0, 60.0, (2, n))
    volts = np.full((2, n), 120.0)
    if outage_at is not None:
        volts[:, outage_at : outage_at + 5] = 0.0  # past the hold-up: two powered runs
    return SampleBlock.build(
        n, 1.0, voltage_v=volts, current_a=amps, cos_phi=[0.95, 0.9], frequency_hz=hz
    )


def test_buffers_kept_across_changing_block_sizes_match_fresh_ones() -> None:
    """A lone core reuses its buffers and their views; a core sharing its measurements
    makes them fresh for every block. Sizes grow (new buffers), shrink and repeat, and
    outages cut blocks into runs at different places."""
    blocks = [
        load(1000, 1),
        load(5000, 2, outage_at=1000),  # new buffers, first run 0..1000 as before
        load(1000, 3),
        load(1000, 4, outage_at=400),
        load(1000, 5, outage_at=700),
        load(1, 6),
        load(1000, 7),
        load(6000, 8, outage_at=10),
        load(5000, 9),
    ]
    kept, fresh = MeterCore(MeterConfig()), MeterCore(MeterConfig(), shared=SharedMeasurements())
    for block in blocks:
        assert events_by_kind(kept.advance(block)) == events_by_kind(fresh.advance(block))
        assert repr(kept.snapshot()) == repr(fresh.snapshot())
    assert kept.nv_state() == fresh.nv_state()


def test_edges_past_the_shared_alternating_states_match_short_blocks() -> None:
    """More edges of the 10 Wh output in one run than the shared array of states
    holds (so they are made), against the same samples in blocks with fewer."""
    n = 25_000  # 2 x 200 A x 120 V for 25,000 s: 333 kWh, 66,666 edges of 5 Wh
    block = SampleBlock.build(n, 1.0, voltage_v=120.0, current_a=np.full((2, n), 200.0))
    long_core, short_core = MeterCore(MeterConfig()), MeterCore(MeterConfig())
    long_events = long_core.advance(block)
    short_events: list[Event] = []
    for piece in block_pieces(block, 1000):
        short_events.extend(short_core.advance(piece))
    edges = events_by_kind(long_events)[1]["10"]
    assert len(edges) > 2**16
    states = [closed for _, closed in edges]
    assert all(a != b for a, b in itertools.pairwise(states))  # alternate
    assert events_by_kind(long_events) == events_by_kind(short_events)
    assert repr(long_core.snapshot()) == repr(short_core.snapshot())


def test_kept_status_constants_follow_each_blocks_frequency() -> None:
    """Uniform blocks of one size at 60 Hz, then 45 Hz (out of range), then 60 Hz
    again, then a per-sample frequency: the frequency error is raised and cleared
    where the frequency changes, however the block's bits were found."""
    core = MeterCore(MeterConfig(boot_s=0.0))
    events: list[Event] = []
    for hz in (60.0, 45.0, 60.0):
        events += core.advance(load(1000, 1, hz=hz))
    per_sample = np.full(1000, 60.0)
    per_sample[500:] = 45.0
    events += core.advance(load(1000, 2, hz=per_sample))
    changes = [
        (type(e).__name__, e.time_s, e.name)
        for e in events
        if isinstance(e, ErrorRaised | ErrorCleared)
    ]
    assert changes == [
        ("ErrorRaised", 1000.0, "frequency"),
        ("ErrorCleared", 2000.0, "frequency"),
        ("ErrorRaised", 3500.0, "frequency"),
    ]


def test_demand_reconfigured_between_long_blocks_equals_short_blocks() -> None:
    """Demand settings changed between blocks (the closes' buffer is sized from them):
    the same closes, demand and maximum as the same samples in short blocks."""
    blocks = [load(3000, seed) for seed in (1, 2, 3)]
    settings = [
        Reconfigure(demand_interval_min=2, demand_subintervals=1, demand_max_window_h=1),
        Reconfigure(
            demand_interval_min=30,
            demand_subintervals=5,
            demand_method=int(DemandMethod.SLIDING),
            demand_max_window_h=0,
        ),
    ]
    config = MeterConfig(demand=DemandConfig(15, 3, DemandMethod.SLIDING, 1))
    long_core, short_core = MeterCore(config), MeterCore(config)
    long_events: list[Event] = []
    short_events: list[Event] = []
    for i, block in enumerate(blocks):
        long_events += long_core.advance(block)
        for piece in block_pieces(block, 200):
            short_events += short_core.advance(piece)
        if i < len(settings):
            long_events += long_core.apply(settings[i])
            short_events += short_core.apply(settings[i])
    assert events_by_kind(long_events) == events_by_kind(short_events)
    assert repr(long_core.snapshot()) == repr(short_core.snapshot())
    assert long_core.nv_state() == short_core.nv_state()
