"""events.jsonl lines: formatted a type at a time, exactly what json.dumps prints."""

from __future__ import annotations

import json

import numpy as np

from twin.batch.report import event_dict, event_lines
from twin.core import (
    DemandClosed,
    ErrorCleared,
    ErrorRaised,
    MaxDemandReset,
    PowerLost,
    PowerRestored,
    ScalarEvent,
)


def reference(events: list[ScalarEvent]) -> list[str]:
    return [json.dumps(event_dict(ev)) for ev in events]


def test_mixed_types_in_their_order() -> None:
    rng = np.random.default_rng(3)
    events: list[ScalarEvent] = [PowerRestored(0.0, 1)]
    for k in range(1, 400):
        t = k * 300.0
        values = (rng.random(3) * 10.0 ** rng.integers(-8, 8, 3)).tolist()
        events.append(DemandClosed(t, *values))
        if k % 37 == 0:
            events += [PowerLost(t + 0.25), PowerRestored(t + 1.5, k), MaxDemandReset(t + 2.0)]
        if k % 91 == 0:
            events += [ErrorRaised(t, 3, "memory"), ErrorCleared(t + 60.0, 3, "memory")]
    assert event_lines(events) == reference(events)


def test_values_json_prints_differently_go_line_by_line() -> None:
    """A NaN (json: NaN), an int where a float is expected, float subclasses: per line."""
    events: list[ScalarEvent] = [
        DemandClosed(300.0, float("nan"), 0.5, 0.5),
        DemandClosed(600.0, 1, 0.25, float("inf")),
        DemandClosed(900.0, 1e-300, -0.0, 1e22),
        DemandClosed(1200.0, np.float64(0.1), 0.2, 0.3),
    ]
    assert event_lines(events) == reference(events)
    assert event_lines(events[2:3]) == reference(events[2:3])  # all plain floats: together
    assert event_lines([]) == []
