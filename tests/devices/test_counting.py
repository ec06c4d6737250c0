"""The counting rules, pure: rollover, reset, restore, debounce (no IO, no clock)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices import (
    ROLLOVER_SLACK_COUNTS,
    CounterEvent,
    CounterRecord,
    CounterTracker,
    CounterWidth,
    CountStep,
    EdgeKind,
    SourceConfig,
)
from twin.errors import DeviceError


def tracker(
    width: CounterWidth = CounterWidth.BITS_16,
    record: CounterRecord | None = None,
    *,
    wall_now_s: float = 0.0,
    **config: object,
) -> CounterTracker:
    cfg = SourceConfig("t", 10.0, width=width, **config)  # type: ignore[arg-type]
    return CounterTracker(cfg, record, wall_now_s=wall_now_s)


def test_a_wrap_within_the_rate_bound_is_a_rollover_beyond_it_a_reset() -> None:
    # 100 counts/s for 1 s + slack: a wrapped jump of up to 100 + slack is plausible.
    limit = 100 + ROLLOVER_SLACK_COUNTS
    t = tracker(max_count_rate_hz=100.0)
    t.counter(65536 - 10, at_s=0.0)
    assert t.counter(limit - 10, at_s=1.0) == CountStep(limit, CounterEvent.ROLLOVER, 1.0)
    t2 = tracker(max_count_rate_hz=100.0)
    t2.counter(65536 - 10, at_s=0.0)
    step = t2.counter(limit - 9, at_s=1.0)
    assert (step.counts, step.event) == (limit - 9, CounterEvent.RESET)


def test_a_32_bit_counter_wraps_at_2_pow_32() -> None:
    t = tracker(CounterWidth.BITS_32)
    t.counter(2**32 - 1, at_s=0.0)
    step = t.counter(1, at_s=1.0)
    assert (step.counts, step.event, t.total_counts) == (2, CounterEvent.ROLLOVER, 2)


def test_a_value_wider_than_declared_is_refused() -> None:
    with pytest.raises(DeviceError, match=r"70000 does not fit 16 bits: expected 0\.\.65535"):
        tracker().counter(70000, at_s=0.0)


def test_a_restored_record_counts_the_difference_and_bounds_a_wrap_by_wall_time() -> None:
    record = CounterRecord(total_counts=50, last_raw=65530, saved_at_unix_s=1000.0)
    t = tracker(record=record, wall_now_s=1001.0, max_count_rate_hz=5.0)
    step = t.counter(10, at_s=0.0)  # wrapped 16 <= 5 x 1 s + slack
    assert (step.counts, step.event, step.uncertainty_s) == (16, CounterEvent.ROLLOVER, 1.0)
    assert t.total_counts == 66
    assert t.record(2000.0) == CounterRecord(66, 10, 2000.0)


def test_debounce_drops_edges_too_close_to_the_last_accepted_one() -> None:
    t = tracker(debounce_s=0.05, edge=EdgeKind.RISING)
    assert t.edge(EdgeKind.RISING, 1.00, 0.0) is not None
    assert t.edge(EdgeKind.FALLING, 1.02, 0.0) is None
    assert t.edge(EdgeKind.RISING, 1.04, 0.0) is None
    falling = t.edge(EdgeKind.FALLING, 1.50, 0.0)
    assert falling is not None and falling.counts == 0  # heard, not counted
    assert t.edge(EdgeKind.RISING, 2.00, 0.0) is not None
    assert t.total_counts == 2


@given(st.lists(st.integers(min_value=0, max_value=100 + ROLLOVER_SLACK_COUNTS), max_size=200))
def test_plausible_increments_through_any_number_of_wraps_are_counted_exactly(
    increments: list[int],
) -> None:
    t = tracker(CounterWidth.BITS_16, max_count_rate_hz=100.0)
    raw = 65_000
    t.counter(raw, at_s=0.0)
    for i, inc in enumerate(increments, start=1):
        raw = (raw + inc) % 65536
        step = t.counter(raw, at_s=float(i))
        assert step.counts == inc and step.counts >= 0
    assert t.total_counts == sum(increments)
