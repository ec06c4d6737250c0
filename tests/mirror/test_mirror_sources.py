"""Acceptance through counter sources: a simulated ADAM-6051 and Tasmota over Mosquitto.

The stand-in's 10 Wh closures advance a counter that the mirror reads like the real
thing: the ADAM-6051 (pymodbus server) is polled every 100 ms wall time; Tasmota's
``COUNTER`` telemetry is published on ``tele/TOPIC/SENSOR`` through a real broker
every TelePeriod. One TelePeriod / poll is 15 s of stand-in time: the counter is
updated right after the mirror took the previous value, and the mirror's clock moves
with it, so each count is known to within exactly 15 s.

A mark is then off its edge by at most the energy of 15 s (10 Wh at 2.4 kW): the
measured error wanders within +-timing/M of the true one. The test computes
independently the window counts between which the verdict must fall: no sooner than
with the timing helping, no later than with it against.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from fractions import Fraction
from pathlib import Path

import aiomqtt
import pytest

from tests.devices.fakes import CounterModule
from tests.helpers import until
from tests.mirror.standin import StandIn, pf1_profile
from twin.core import PulseEdges, PulseOutput
from twin.mirror import Mirror, MirrorConfig, Verdict

TELE_S = 15
REF = Fraction(5, 100)
EDGE_WH = Fraction(5)
WH_PER_COUNT = Fraction(10)
POLL_WH = Fraction(2400 * TELE_S, 3600)  # model energy of one 15 s interval


def decision_counts(error_pct: Fraction) -> tuple[int, int]:
    """(earliest, latest) window count of the verdict, scanning exactly."""

    def first(sign: int) -> int:
        for n in range(1, 100_000):
            model = n * WH_PER_COUNT / (1 + error_pct / 100)
            measured = abs(error_pct) + sign * 100 * POLL_WH / model  # timing for / against
            u = 100 * (EDGE_WH + POLL_WH) / model + REF
            if measured - u > Fraction(1, 2) or measured + u <= Fraction(1, 2):
                return n
        raise AssertionError("never")

    return first(+1 if error_pct else -1), first(-1 if error_pct else +1)


async def run_rig(
    tmp_path: Path,
    url: str,
    publish: Callable[[int], Awaitable[None]],
    calibration_pct: float,
    steps: int,
) -> list[tuple[int, Verdict]]:
    stand = StandIn(pf1_profile(tmp_path), calibration_pct=calibration_pct)
    now_s = [0.0]
    seen: list[tuple[int, Verdict]] = []
    config = MirrorConfig(
        url, profile=pf1_profile(tmp_path), reference_uncertainty_pct=float(REF), refresh_s=None
    )
    closures = 0
    async with Mirror(config, clock=lambda: now_s[0]) as mirror:
        mirror.listeners.append(lambda m: seen.append((m.check.counts, m.check.verdict)))
        await publish(0)
        await until(lambda: mirror.readings >= 1, "baseline")
        for _ in range(steps):
            for ev in stand.step(TELE_S):
                if isinstance(ev, PulseEdges) and ev.output is PulseOutput.KH_10:
                    closures += int(ev.closed.sum())
            fed = mirror.readings
            now_s[0] = stand.t_s
            await publish(closures)  # never suspends before the value is in place
            await until(lambda: mirror.readings > fed, "the count")  # noqa: B023
            assert mirror.source.total_counts == closures
    return seen


def check(seen: list[tuple[int, Verdict]], error_pct: Fraction, expected: Verdict) -> None:
    earliest, latest = decision_counts(error_pct)
    decided = [n for n, v in seen if v is expected]
    assert decided, f"never {expected.name}"
    assert earliest <= min(decided) <= latest
    assert {v for n, v in seen if n < earliest} <= {Verdict.UNDECIDED}
    other = Verdict.WITHIN_CLASS if expected is Verdict.OUTSIDE_CLASS else Verdict.OUTSIDE_CLASS
    assert other not in {v for _, v in seen}
    assert seen[-1][1] is expected


async def test_adam6051_plus_2_pct_outside_within_the_predicted_counts(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    async def publish(value: int) -> None:
        await counter_module.set_counter(3, 0, value, low_word_first=True)

    url = f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh=10&poll=100ms"
    _, latest = decision_counts(Fraction(2))
    seen = await run_rig(tmp_path, url, publish, 2.0, latest + 10)
    check(seen, Fraction(2), Verdict.OUTSIDE_CLASS)


@pytest.mark.parametrize(
    ("calibration_pct", "expected"),
    [(0.8, Verdict.OUTSIDE_CLASS), (0.0, Verdict.WITHIN_CLASS)],
)
async def test_tasmota_over_mosquitto(
    mosquitto: int, tmp_path: Path, calibration_pct: float, expected: Verdict
) -> None:
    topic = "tasmota_5E1B"
    async with aiomqtt.Client("127.0.0.1", mosquitto) as client:

        async def publish(value: int) -> None:
            payload = json.dumps({"Time": "2026-01-01T00:00:00", "COUNTER": {"C1": value}})
            await client.publish(f"tele/{topic}/SENSOR", payload, qos=1)

        url = f"mqtt-tasmota://127.0.0.1:{mosquitto}/{topic}?counter=C1&kh=10"
        error = Fraction(calibration_pct).limit_denominator(1000)
        _, latest = decision_counts(error)
        seen = await run_rig(tmp_path, url, publish, calibration_pct, latest + 10)
    check(seen, error, expected)
