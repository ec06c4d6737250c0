"""The stand-in for the physical meter: a twin core playing a profile, stepped by hand.

It is the real core (:class:`twin.core.MeterCore` through :func:`twin.drive.drive`),
with the calibration error the core's accuracy model applies to registration
(``AccuracyConfig.calibration_error_pct``): a meter registering +2 % emits its pulse
edges 2 % early. Its meter time is the mirror's time in these tests.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from twin.core import AccuracyConfig, Event, MeterConfig, MeterCore, MeterModel
from twin.drive import drive
from twin.loadprofile import load_profile

#: A 1-day profile at PF 1 (constant 2.4 kW: one 10 Wh closure every 15 s).
PF1_PROFILE = """\
schema: 1
name: pf1-day
description: 2.4 kW at PF 1 for a day
defaults:
  L1: {voltage: 120, pf: 1.0}
  L2: {voltage: 120, pf: 1.0}
segments:
  - kind: constant
    duration: 1d
    L1: {current: 10}
    L2: {current: 10}
"""


def pf1_profile(tmp_path: Path) -> str:
    path = tmp_path / "pf1-day.yaml"
    path.write_text(PF1_PROFILE)
    return str(path)


class StandIn:
    """A meter registering ``calibration_pct`` off, playing ``profile`` from time 0."""

    def __init__(
        self, profile: str, *, calibration_pct: float = 0.0, model: str = "MMD-200A"
    ) -> None:
        self.sampler = load_profile(profile).sampler()
        self.core = MeterCore(
            MeterConfig(
                model=MeterModel.parse(model),
                accuracy=AccuracyConfig(calibration_error_pct=calibration_pct),
            )
        )
        self.t_s = 0.0

    @property
    def energy_wh(self) -> float:
        return self.core.nv_state().energy_delivered_uj / 3_600_000_000

    def step(self, seconds: int) -> list[Event]:
        """Advance whole seconds; the events of the span (pulse edges among them)."""
        out: list[Event] = []
        for events in drive(self.core, self.sampler, self.t_s, 1.0, seconds):
            out += events
        self.t_s += seconds
        return out


def exact_decision_count(
    error_pct: Fraction,
    limit_pct: Fraction,
    edge_wh: Fraction,
    per_count: Fraction,
    ref_pct: Fraction,
) -> int:
    """Independent of the mirror: the smallest window count at which a steady error is
    decided (outside: |e| - u > limit; within: |e| + u <= limit), scanning exactly."""
    for n in range(1, 1_000_000):
        model = n * per_count / (1 + error_pct / 100)
        u = 100 * edge_wh / model + ref_pct
        if abs(error_pct) - u > limit_pct or abs(error_pct) + u <= limit_pct:
            return n
    raise AssertionError("never decidable")
