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

#: Samples per chunk of ``ErrorCurve.scale``: two elements' float64 buffers of
#: 256 KiB each, well inside a core's own (L2) cache.
CHUNK_SAMPLES = 16_384


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

    def scale(self, power_w: FloatArray, current_a: FloatArray, pf: FloatArray) -> None:
        """Multiply ``power_w`` (elements, n) in place by the registered / true ratio.

        The ratio is formed a chunk of ``CHUNK_SAMPLES`` at a time in two small
        buffers, so its half-dozen passes run in the core's own cache: over a whole
        day-long block its temporaries were megabytes each, streamed through the
        cache that two processes on one machine share (the Monte-Carlo workers
        slowed each other by a third). An input constant over the block (a
        broadcast row) is evaluated once. The ratio is
        ``1 + (offset + slope x log10(I / I_ref) + PF term + calibration) / 100``,
        I clipped to the curve's current range.
        """
        n = power_w.shape[1]
        els = power_w.shape[0]
        width = max(1, min(n, CHUNK_SAMPLES))
        buf = np.empty((els, width), np.float64)
        pf_buf = np.empty((els, width), np.float64)
        amps_const = _constant(current_a)
        pf_const = _constant(pf)
        column = (els, 1)
        curve_a = self._current_term(current_a[:, :1], np.empty(column)) if amps_const else None
        curve_pf = self._pf_term(pf[:, :1], np.empty(column)) if pf_const else None
        for a in range(0, n, width):
            b = min(a + width, n)
            t = buf[:, : b - a]
            term_a = self._current_term(current_a[:, a:b], t) if curve_a is None else curve_a
            term_pf = (
                self._pf_term(pf[:, a:b], pf_buf[:, : b - a]) if curve_pf is None else curve_pf
            )
            np.add(term_a, term_pf, out=t)
            t += self.calibration_pct
            t /= 100.0
            t += 1.0
            power_w[:, a:b] *= t

    def _current_term(self, current_a: FloatArray, out: FloatArray) -> FloatArray:
        """offset + slope x log10(amps / reference), into ``out``."""
        np.clip(current_a, self.low_a, self.high_a, out=out)
        out /= self.reference_a
        np.log10(out, out=out)
        out *= self.slope_pct_per_decade
        out += self.offset_pct
        return out

    def _pf_term(self, pf: FloatArray, out: FloatArray) -> FloatArray:
        """The PF term, pf_at_half x (1 - clip(|pf|, 0.5, 1)) x 2, into ``out``."""
        np.abs(pf, out=out)
        np.clip(out, 0.5, 1.0, out=out)
        np.subtract(1.0, out, out=out)
        out *= self.pf_pct_at_half
        out *= 2.0
        return out


def _constant(values: FloatArray) -> bool:
    """Whether each row is one value broadcast over the samples (stride 0)."""
    return values.ndim == 2 and values.shape[1] > 1 and values.strides[1] == 0
