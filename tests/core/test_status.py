"""Status bits, error priority and the events the core emits for them."""

from __future__ import annotations

import sys
from types import FrameType

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
from twin.core.status import line_status_bits


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


def test_per_sample_bits_run_no_enum_code_inside_numpy() -> None:
    """numpy drops whatever is raised while it looks up an operand's special methods,
    and an IntEnum's type answers those lookups in Python: a Ctrl-C landing there was
    lost (the run went on to the end). So the bits are shifted by plain ints, and no
    Python code of ``enum`` runs while they are made."""
    n = 64  # varied samples: the per-sample path, not one value for the block
    rng = np.random.default_rng(7)
    voltage_v = rng.uniform(0.0, 300.0, (2, n))
    current_a = rng.uniform(0.0, 250.0, (2, n))
    power_w = rng.uniform(-5000.0, 5000.0, (2, n))
    pf = rng.uniform(-1.0, 1.0, (2, n))
    frequency_hz = rng.uniform(40.0, 70.0, n)
    temperature_c = rng.uniform(-60.0, 100.0, n)
    entered: list[str] = []

    def tracer(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename.endswith("enum.py"):
            entered.append(frame.f_code.co_name)

    sys.settrace(tracer)
    try:
        bits = line_status_bits(
            2, voltage_v, current_a, power_w, pf, frequency_hz, temperature_c, 200.0, 0.05
        )
    finally:
        sys.settrace(None)
    assert entered == []
    seen = int(np.bitwise_or.reduce(bits))
    assert seen == (1 << 10) - 1  # every per-sample bit, 0-9, set somewhere
