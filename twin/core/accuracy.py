"""Accuracy model: the ratio of registered to true energy per element.

Ideal by default (ratio exactly 1, no float work). With a seed, a per-meter error
curve is drawn once from ``numpy.random.default_rng(seed)``: an offset, a slope
over log current and a power-factor term, bounded so the meter stays inside its
class (±0.5 % at PF 1, ±0.75 % at PF 0.5, 2-200 A scaled to the CT rating). An
injected calibration error adds a fixed percentage on top.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from twin.core.models import AccuracyConfig, MeterModel
from twin.core.samples import FloatArray


@dataclass(frozen=True, slots=True)
class ErrorCurve:
    offset_pct: float
    slope_pct_per_decade: float
    pf_pct_at_half: float
    reference_a: float
    low_a: float
    high_a: float
    calibration_pct: float

    @classmethod
    def from_config(cls, config: AccuracyConfig, model: MeterModel) -> ErrorCurve | None:
        if config.seed is None and config.calibration_error_pct == 0.0:
            return None
        scale = model.ct_primary_a / 200.0
        if config.seed is None:
            offset = slope = pf_term = 0.0
        else:
            rng = np.random.default_rng(config.seed)
            # |offset| + 2 decades * |slope| <= 0.45 % at PF 1; the PF term adds <= 0.2 %.
            offset = float(rng.uniform(-0.25, 0.25))
            slope = float(rng.uniform(-0.1, 0.1))
            pf_term = float(rng.uniform(-0.2, 0.2))
        return cls(
            offset_pct=offset,
            slope_pct_per_decade=slope,
            pf_pct_at_half=pf_term,
            reference_a=30.0 * scale,
            low_a=2.0 * scale,
            high_a=220.0 * scale,
            calibration_pct=config.calibration_error_pct,
        )

    def ratio(self, current_a: FloatArray, pf_abs: FloatArray) -> FloatArray:
        """Registered / true energy for each sample."""
        amps = np.clip(current_a, self.low_a, self.high_a)
        pct = (
            self.offset_pct
            + self.slope_pct_per_decade * np.log10(amps / self.reference_a)
            + self.pf_pct_at_half * (1.0 - np.clip(pf_abs, 0.5, 1.0)) * 2.0
            + self.calibration_pct
        )
        return np.asarray(1.0 + pct / 100.0, dtype=np.float64)
