"""Status bits, error priority and the events the core emits for them."""

from __future__ import annotations

import numpy as np

from twin.core import (
    ERROR_PRIORITY,
    ErrorCode,
    MeterCore,
    PulseEdges,
    PulseOutput,
    SampleBlock,
    highest_error,
    highest_error_codes,
)


def test_priority_is_the_register_map_order() -> None:
    # REGISTER_MAP.md: 1 memory ... 9 temperature, highest priority first.
    assert [int(c) for c in ERROR_PRIORITY] == list(range(1, 10))
    assert highest_error([]) is ErrorCode.NONE
    assert highest_error([ErrorCode.TEMPERATURE, ErrorCode.REVERSED_CT]) is ErrorCode.REVERSED_CT
    assert highest_error([9, 2, 4]) is ErrorCode.CALIBRATION


def test_highest_error_codes_per_set() -> None:
    sets = [set(), {9}, {5, 6}, {1, 2, 3, 4, 5, 6, 7, 8, 9}, {8, 3}]
    masks = np.array([sum(1 << c for c in s) for s in sets], np.int64)
    expected = [int(highest_error(s)) for s in sets]
    assert highest_error_codes(masks).tolist() == expected == [0, 9, 5, 1, 3]


def test_pulse_outputs_are_an_enum_equal_to_their_names() -> None:
    core = MeterCore()
    # 12 kWh: every output has edges (an output without any in a block reports none)
    events = core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=100.0))
    outputs = [e.output for e in events if isinstance(e, PulseEdges)]
    assert outputs == list(PulseOutput)
    assert PulseOutput.COUNTER == "counter" and PulseOutput("1000") is PulseOutput.KH_1000
