"""The accuracy curve applied in chunks equals the formula applied to whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import accuracy_ratio
from twin.core import AccuracyConfig, MeterConfig
from twin.core.accuracy import CHUNK_SAMPLES, ErrorCurve


@pytest.mark.parametrize(
    "n", [1, 7, CHUNK_SAMPLES - 1, CHUNK_SAMPLES, CHUNK_SAMPLES + 1, 3 * CHUNK_SAMPLES + 5]
)
@pytest.mark.parametrize("constant", ["none", "current", "pf", "both"])
def test_scale_equals_the_curve_over_whole_arrays(n: int, constant: str) -> None:
    rng = np.random.default_rng(n)
    amps = rng.uniform(0.0, 260.0, (2, n))
    pf = rng.uniform(-1.0, 1.0, (2, n))
    if constant in ("current", "both"):
        amps = np.broadcast_to(np.array([[0.5], [75.0]]), (2, n))
    if constant in ("pf", "both"):
        pf = np.broadcast_to(np.array([[-0.6], [0.95]]), (2, n))
    model = MeterConfig().model
    for seed, calibration_pct in ((3, 0.0), (11, -2.5), (None, 4.0)):
        curve = ErrorCurve.from_config(
            AccuracyConfig(seed=seed, calibration_error_pct=calibration_pct), model
        )
        assert curve is not None
        power = rng.uniform(-5000.0, 5000.0, (2, n))
        expected = power * accuracy_ratio(curve, amps, pf)
        curve.scale(power, amps, pf)
        np.testing.assert_array_equal(power, expected)  # the same floats, not close ones


def test_an_ideal_meter_has_no_curve() -> None:
    assert ErrorCurve.from_config(AccuracyConfig(), MeterConfig().model) is None
