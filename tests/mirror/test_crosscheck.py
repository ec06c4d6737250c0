"""The cross-check's bound and verdicts against exact (rational) arithmetic.

Expected figures are computed here with :class:`fractions.Fraction` from the
definitions (physical = counts x Wh per count; model energy at the middle of each
end's interval; quantisation = one edge, Kh/2; timing = half of each end's model
energy interval; class limit linear from 0.5 % at PF 1 to 0.75 % at PF 0.5), then
compared with the float results to a few ulps.
"""

from __future__ import annotations

import math
from fractions import Fraction as F

import pytest

from twin.mirror import (
    CrossCheck,
    EdgeMark,
    Verdict,
    Window,
    check_window,
    class_limit_pct,
    pulses_to_decide,
)

ULPS = 8 * 2.0**-52


def close(actual: float, expected: F) -> bool:
    return math.isclose(actual, float(expected), rel_tol=ULPS, abs_tol=1e-15)


def mark(
    counts: int,
    at_s: float,
    model_wh: float,
    *,
    u_s: float = 0.0,
    lo_wh: float | None = None,
    vah: float | None = None,
) -> EdgeMark:
    return EdgeMark(
        counts=counts,
        at_s=at_s,
        uncertainty_s=u_s,
        model_lo_wh=model_wh if lo_wh is None else lo_wh,
        model_hi_wh=model_wh,
        apparent_vah=model_wh if vah is None else vah,
    )


def test_class_limit_is_linear_in_pf_and_clamped() -> None:
    assert class_limit_pct(1.0) == 0.5
    assert class_limit_pct(0.5) == 0.75
    assert close(class_limit_pct(0.75), F(5, 8))
    assert close(class_limit_pct(0.9), F(1, 2) + F(1, 10) * F(1, 2))
    assert class_limit_pct(0.2) == 0.75  # no accuracy stated below PF 0.5
    assert class_limit_pct(-1.0) == 0.5  # magnitude


def test_the_first_pulse_opens_a_window_but_decides_nothing() -> None:
    check = CrossCheck(wh_per_count=10, edge_wh=5)
    assert check.verdict().verdict is Verdict.UNDECIDED  # no edge at all
    check.add(mark(1, 10.0, 10.0))
    result = check.verdict()
    assert result.verdict is Verdict.UNDECIDED
    assert math.isnan(result.registration_pct) and math.isnan(result.bound_pct)
    assert result.counts == 0


def test_a_window_with_no_edge_is_undecided() -> None:
    # Two reports of the same count (a poll that counted nothing new): no edge inside.
    window = Window(mark(5, 0.0, 0.0), mark(5, 100.0, 50.0), 10, 5)
    assert window.counts == 0
    assert check_window(window).verdict is Verdict.UNDECIDED
    assert check_window(None).verdict is Verdict.UNDECIDED


def test_bound_of_a_timestamped_window() -> None:
    # 100 counts of 10 Wh against 999 Wh of model energy, edges timestamped exactly.
    window = Window(mark(0, 0.0, 1.0), mark(100, 1000.0, 1000.0), 10, 5)
    bound = window.bound()
    assert bound is not None
    model = F(999)
    assert close(bound.quantisation_pct, 100 * F(5) / model)
    assert bound.timing_pct == 0.0 and bound.reference_pct == 0.0
    assert bound.class_limit_pct == 0.5
    result = check_window(window)
    registration = 100 * F(1000) / model
    assert close(result.registration_pct, registration)
    # error 0.1001 %, uncertainty 0.5005 %: 0.6006 > 0.5, and 0.1001 - 0.5005 < 0.5.
    assert result.verdict is Verdict.UNDECIDED


def test_long_idle_costs_nothing_when_the_edges_are_known() -> None:
    # A 10 h idle between two bursts: the window is long, its energy is the bursts'.
    # Polled every 60 s; both ends' poll intervals fall in loaded time at 3.6 kW, so
    # each end's model interval is 60 Wh; the idle adds neither energy nor timing.
    start = mark(1, 60.0, 60.0, u_s=60.0, lo_wh=0.0)
    end = mark(301, 36_000.0 + 900.0, 3060.0, u_s=60.0, lo_wh=3000.0)
    window = Window(start, end, 10, 5)
    bound = window.bound()
    assert bound is not None
    model = F(3030) - F(30)  # middles of [0, 60] and [3000, 3060]
    assert close(window.model_wh, model)
    assert close(bound.timing_pct, 100 * (F(30) + F(30)) / model)
    assert close(bound.quantisation_pct, 100 * F(5) / model)
    assert close(check_window(window).registration_pct, 100 * F(3000) / model)
    # The same polls landing inside the idle cost no timing at all.
    idle = Window(mark(1, 5000.0, 60.0, u_s=60.0), mark(301, 36_000.0, 3060.0, u_s=60.0), 10, 5)
    idle_bound = idle.bound()
    assert idle_bound is not None and idle_bound.timing_pct == 0.0


def test_high_pulse_rate_near_the_poll_period() -> None:
    # 36 kW on a 10 Wh count polled every 1 s: about one count per poll, each end known
    # only within 1 s = 10 Wh of model energy. 100 s window: timing is one count's worth.
    power_w = F(36_000)
    per_s = power_w / 3600  # Wh per second
    start = mark(1, 1.0, float(per_s), u_s=1.0, lo_wh=0.0)
    end = mark(101, 101.0, float(101 * per_s), u_s=1.0, lo_wh=float(100 * per_s))
    window = Window(start, end, 10, 5)
    bound = window.bound()
    assert bound is not None
    model = F(1000)
    assert close(window.model_wh, model)
    assert close(bound.timing_pct, 100 * (per_s / 2 + per_s / 2) / model)  # 1.0 %
    assert close(bound.quantisation_pct, F(1, 2))
    assert close(bound.uncertainty_pct, F(3, 2))
    assert check_window(window).verdict is Verdict.UNDECIDED


def test_window_pf_picks_the_class_limit_and_reference_adds() -> None:
    start = mark(0, 0.0, 0.0, vah=0.0)
    end = mark(1000, 3600.0, 10_000.0, vah=20_000.0)  # PF 0.5 over the window
    window = Window(start, end, 10, 5, reference_pct=0.1)
    bound = window.bound()
    assert bound is not None
    assert bound.class_limit_pct == 0.75
    assert close(bound.uncertainty_pct, F(5, 100) + F(1, 10))
    assert check_window(window).verdict is Verdict.WITHIN_CLASS  # 0 + 0.15 <= 0.75


def exact_count(error: F, limit: F, edge: F, per_count: F, ref: F) -> int | None:
    """Independent: smallest N with the verdict decided, scanning N upward."""
    for n in range(1, 100_000):
        model = n * per_count / (1 + error / 100)
        u = 100 * edge / model + ref
        if abs(error) - u > limit or abs(error) + u <= limit:
            return n
    return None


@pytest.mark.parametrize(
    ("error", "ref", "per_count"),
    [
        (F(2), F(0), F(10)),
        (F(8, 10), F(0), F(10)),
        (F(2), F(5, 100), F(10)),
        (F(8, 10), F(5, 100), F(5)),
        (F(3, 10), F(5, 100), F(10)),
        (F(-2), F(0), F(10)),
        (F(0), F(5, 100), F(10)),
    ],
)
def test_pulses_to_decide_matches_an_exact_scan(error: F, ref: F, per_count: F) -> None:
    expected = exact_count(error, F(1, 2), F(5), per_count, ref)
    got = pulses_to_decide(
        float(error),
        class_limit_pct=0.5,
        edge_wh=5,
        wh_per_count=float(per_count),
        reference_pct=float(ref),
    )
    if expected is not None and ref:  # exact ties only occur without a reference term
        assert got == expected
    else:
        assert got is not None and expected is not None and abs(got - expected) <= 1


def test_pulses_to_decide_never_for_an_error_on_the_limit() -> None:
    assert pulses_to_decide(0.5, class_limit_pct=0.5, edge_wh=5, wh_per_count=10) is None
    assert (
        pulses_to_decide(0.45, class_limit_pct=0.5, edge_wh=5, wh_per_count=10, reference_pct=0.05)
        is None
    )


@pytest.mark.parametrize("error_pct", [2.0, 0.8, 0.3, 0.0, -1.0])
def test_a_steady_error_is_decided_exactly_at_the_predicted_count(error_pct: float) -> None:
    # Marks at exact edges of a meter whose registration is off by error_pct; the
    # model is what the load really delivered. Undecided before the count, decided at it.
    ref = 0.05
    predicted = pulses_to_decide(
        error_pct, class_limit_pct=0.5, edge_wh=5, wh_per_count=10, reference_pct=ref
    )
    assert predicted is not None
    check = CrossCheck(wh_per_count=10, edge_wh=5, reference_pct=ref, rolling_counts=None)
    ratio = 1 + error_pct / 100
    expected = Verdict.WITHIN_CLASS if abs(error_pct) + ref < 0.5 else Verdict.OUTSIDE_CLASS
    for n in range(predicted + 5):
        model = (1 + n) * 10 / ratio
        check.add(mark(1 + n, float(n), model))
        verdict = check.verdict().verdict
        if n < predicted:
            assert verdict is Verdict.UNDECIDED, n
        else:
            assert verdict is expected, n


def test_the_ladder_flags_a_drift_the_cumulative_window_hides() -> None:
    # 2000 counts at registration 100 %, then the meter drifts to +3 %: the cumulative
    # window stays inside for long, but the recent windows show it outside.
    check = CrossCheck(wh_per_count=10, edge_wh=5, rolling_counts=None)
    model = 0.0
    for n in range(1, 2001):
        model += 10.0
        check.add(mark(n, float(n), model))
    assert check.verdict().verdict is Verdict.WITHIN_CLASS
    flagged_at = None
    for n in range(2001, 2400):
        model += 10.0 / 1.03
        check.add(mark(n, float(n), model))
        if check.verdict().verdict is Verdict.OUTSIDE_CLASS and flagged_at is None:
            flagged_at = n - 2000
    assert check.cumulative().verdict is not Verdict.OUTSIDE_CLASS
    # A window of k drifted counts decides once 3 - 100*5*1.03/(10 k) > 0.5, k >= 21;
    # the ladder's windows are powers of two marks back: 32 at the latest.
    assert flagged_at is not None and 21 <= flagged_at <= 32


def test_stale_input_wins_and_keeps_the_figures() -> None:
    check = CrossCheck(wh_per_count=10, edge_wh=5)
    check.add(mark(0, 0.0, 0.0))
    check.add(mark(10, 10.0, 100.0))
    stale = check.verdict(stale=True)
    assert stale.verdict is Verdict.INPUT_STALE
    assert stale.registration_pct == 100.0


def test_marks_must_come_in_order() -> None:
    check = CrossCheck(wh_per_count=10, edge_wh=5)
    check.add(mark(5, 10.0, 50.0))
    with pytest.raises(ValueError, match="time order"):
        check.add(mark(4, 11.0, 60.0))


def test_the_worked_example_of_docs_mirror() -> None:
    # docs/mirror.md: 10 Wh output, rising edges, 3.6 kW, rig 0.05 %.
    def n(error: float, timing_wh: float = 0.0) -> int | None:
        return pulses_to_decide(
            error,
            class_limit_pct=0.5,
            edge_wh=5,
            wh_per_count=10,
            timing_wh=timing_wh,
            reference_pct=0.05,
        )

    assert n(0.8, timing_wh=1.0) == 242  # ADAM polled every second: 1 Wh per poll
    assert n(0.8) == 202  # GPIO
    assert n(2.0) == 36
    assert n(0.0) == 112
