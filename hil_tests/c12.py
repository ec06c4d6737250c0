"""ANSI C12.1 accuracy points, their pass limits, test durations and averages.

Theory of operation
-------------------
Points follow C12.1 (full load FL at the test amperes TA, light load LL at 10 % TA,
PF 0.5 at TA, starting load, no-load creep at 110 % and 115 % of 120 V) plus the
Mini Meter's spec range (2-220 A, 102-138 V, 50/60 Hz, each element alone). TA is
15 % of the CT rating (30 A for a 200 A model); currents scale with the CT rating.
Limits are the meter's spec: ±0.5 % of registration at PF 1, ±0.75 % at PF 0.5.

Expected energy is computed here from V·I·PF·t for the elements the model has,
never from the meter core. Registered energy is the difference of two readings of a
register with a resolution of ``resolution_wh`` (1 Wh for ``energy_delivered_wh``,
10 Wh for the 10 Wh pulse output), so a reading can be off by one resolution step.
The duration of each point is chosen so that step is at most a tenth of the limit:
``t >= resolution / (limit/10 × P)``; creep and starting load use a window in which
the starting load would move the register by ten steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hil_tests.scenario import Scenario
from twin.hil import Load

LIMIT_PF1_PCT = 0.5
LIMIT_PF05_PCT = 0.75
LIMIT_AVERAGE_PCT = 0.5
QUANTISATION_SHARE = 0.1  # one resolution step may use at most this share of the limit
START_STEPS = 10  # creep/starting windows: the starting load would register this many steps
SETTLE_S = 10.0  # after power-up (boot screen) before the measured window starts

ACCURACY, CREEP, STARTING = "accuracy", "creep", "starting"


@dataclass(frozen=True, slots=True)
class Point:
    key: str
    title: str
    kind: str  # accuracy | creep | starting
    l1: Load
    l2: Load
    frequency_hz: float = 60.0
    limit_pct: float = LIMIT_PF1_PCT

    def power_w(self, elements: int) -> float:
        return self.l1.power_w + (self.l2.power_w if elements == 2 else 0.0)

    def conditions(self, elements: int) -> str:
        def line(name: str, load: Load) -> str:
            lag = "lead" if load.leading else "lag"
            pf = "1" if load.pf == 1 else f"{load.pf:g} {lag}"
            return f"{name} {load.voltage_v:g} V {load.current_a:g} A PF {pf}"

        lines = [line("L1", self.l1)] + ([line("L2", self.l2)] if elements == 2 else [])
        return ", ".join(lines) + f", {self.frequency_hz:g} Hz"

    def scenario(self) -> Scenario:
        return Scenario.constant(f"c12-{self.key}", self.l1, self.l2, self.frequency_hz)

    def duration_s(self, elements: int, resolution_wh: float, start_w: float) -> float:
        if self.kind == ACCURACY:
            step_share = QUANTISATION_SHARE * self.limit_pct / 100.0
            energy_wh = resolution_wh / step_share
            return math.ceil(energy_wh * 3600.0 / self.power_w(elements) - 1e-9)
        return math.ceil(START_STEPS * resolution_wh * 3600.0 / start_w - 1e-9)


def points(ct_primary_a: float, elements: int) -> list[Point]:
    """The C12.1 points of a model with CT rating ``ct_primary_a`` (TA = 15 %)."""
    scale = ct_primary_a / 200.0
    ta = 0.15 * ct_primary_a
    start_a = 0.001 * ta

    def both(v: float, i: float, pf: float = 1.0, lead: bool = False) -> tuple[Load, Load]:
        load = Load(v, i, pf, lead)
        return load, load

    fl = both(120, ta)
    rows = [
        Point("FL", "full load", ACCURACY, *fl),
        Point("LL", "light load", ACCURACY, *both(120, 0.1 * ta)),
        Point("PF", "PF 0.5 lag", ACCURACY, *both(120, ta, 0.5), limit_pct=LIMIT_PF05_PCT),
        Point(
            "PFlead", "PF 0.5 lead", ACCURACY, *both(120, ta, 0.5, True), limit_pct=LIMIT_PF05_PCT
        ),
        Point("start", "starting load", STARTING, *both(120, start_a)),
        Point("creep132", "no-load creep 132 V", CREEP, *both(132, 0.0)),
        Point("creep138", "no-load creep 138 V", CREEP, *both(138, 0.0)),
        Point("I2A", f"{2 * scale:g} A", ACCURACY, *both(120, 2 * scale)),
        Point("I200A", f"{200 * scale:g} A (rated)", ACCURACY, *both(120, 200 * scale)),
        Point("I220A", f"{220 * scale:g} A (maximum)", ACCURACY, *both(120, 220 * scale)),
        Point("V102", "102 V", ACCURACY, *both(102, ta)),
        Point("V138", "138 V", ACCURACY, *both(138, ta)),
        Point("F50", "50 Hz", ACCURACY, *fl, frequency_hz=50.0),
        Point("F60", "60 Hz", ACCURACY, *fl, frequency_hz=60.0),
        Point("L1only", "L1 only", ACCURACY, Load(120, ta), Load(120, 0.0)),
    ]
    if elements == 2:
        rows.append(Point("L2only", "L2 only", ACCURACY, Load(120, 0.0), Load(120, ta)))
    return rows


def starting_power_w(ct_primary_a: float, elements: int) -> float:
    return 120.0 * 0.001 * 0.15 * ct_primary_a * elements


@dataclass(frozen=True, slots=True)
class Row:
    """One measured point of the report."""

    key: str
    title: str
    conditions: str
    duration_s: float
    expected_wh: float
    registered_wh: float
    limit: str
    passed: bool
    bound_pct: float | None = None  # the error's uncertainty (pulses: the mirror's bound)

    @property
    def error_pct(self) -> float | None:
        if self.expected_wh <= 0:
            return None
        return 100.0 * (self.registered_wh - self.expected_wh) / self.expected_wh


AVERAGES: dict[str, tuple[str, dict[str, float]]] = {
    "avg_fl_ll": ("(4·FL + LL)/5", {"FL": 4, "LL": 1}),
    "avg_fl_ll_pf": ("(4·FL + 2·LL + PF)/7", {"FL": 4, "LL": 2, "PF": 1}),
}


def weighted_error(rows: dict[str, Row], weights: dict[str, float]) -> tuple[float, float]:
    """The weighted error % and its uncertainty (the same weights of the rows' bounds)."""
    total = sum(weights.values())
    error = sum(w * (rows[k].error_pct or 0.0) for k, w in weights.items()) / total
    bound = sum(w * (rows[k].bound_pct or 0.0) for k, w in weights.items()) / total
    return error, bound
