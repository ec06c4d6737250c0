"""Cross-check against a reference meter read over Modbus (``--reference modbus-meter://``).

The reference is a second twin served over Modbus TCP (an in-process Twin on a free
port, manual clock) playing the same profile as the stand-in; the stand-in's 10 Wh
output reaches the mirror through the virtual source. Both are stepped a second at a
time on one clock, and the reference is polled after each step, so every mark is
bracketed by polls one second apart (its energy register has 1 Wh resolution).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from devices import open_sink
from tests.mirror.standin import StandIn, until
from twin.errors import ConfigError
from twin.mirror import Check, Mirror, MirrorConfig, ModbusMeterReference, ModbusMeterSpec, Verdict
from twin.mirror.pulse_out import PulseOut
from twin.runtime import Twin, TwinConfig

#: 24 kW at PF 1 (100 A on both lines at 120 V): a 10 Wh closure every 1.5 s.
HEAVY_PROFILE = """\
schema: 1
name: heavy
description: 24 kW at PF 1
defaults:
  L1: {voltage: 120, pf: 1.0}
  L2: {voltage: 120, pf: 1.0}
segments:
  - kind: constant
    duration: 1d
    L1: {current: 100}
    L2: {current: 100}
"""


async def run_against_reference(
    tmp_path: Path, calibration_pct: float, seconds: int, channel: str
) -> list[Check]:
    profile = tmp_path / "heavy.yaml"
    profile.write_text(HEAVY_PROFILE)
    stand = StandIn(str(profile), calibration_pct=calibration_pct)
    now_s = [0.0]
    checks: list[Check] = []
    ref_config = TwinConfig(profile=str(profile), port=0, speed=None)
    async with Twin(ref_config) as reference_twin:
        url = (
            f"modbus-meter://127.0.0.1:{reference_twin.port}?unit=1&energy=0&type=uint64"
            "&poll=1h&uncertainty=0.05"
        )
        config = MirrorConfig(f"virtual://{channel}?kh=10", reference_url=url, refresh_s=None)
        assert config.reference_meter is not None
        reference = ModbusMeterReference(config.reference_meter, clock=lambda: now_s[0])
        async with (
            PulseOut(open_sink(f"virtual://{channel}")) as out,
            Mirror(config, reference=reference, clock=lambda: now_s[0]) as mirror,
        ):
            mirror.listeners.append(lambda m: checks.append(m.check))
            await until(lambda: reference.polls >= 1, "the first poll")
            while stand.t_s < seconds:
                out.on_events(stand.step(1))
                reference_twin.step(1)
                await out.flush()
                await until(lambda: mirror.source.total_counts == out.sink.closures, "pulses")
                assert mirror.pending <= mirror.source.total_counts  # marks wait for a poll
                now_s[0] = stand.t_s
                await reference.poll()
                mirror.reference_updated()
                assert mirror.pending == 0
            check = mirror.check
            assert check.bound is not None and check.bound.reference_pct == 0.05
            assert check.bound.timing_pct > 0  # the poll brackets and register resolution
    return checks


@pytest.mark.parametrize(("calibration_pct", "seconds"), [(0.0, 1500), (0.3, 4500)])
async def test_within_class_against_a_reference_meter(
    tmp_path: Path, calibration_pct: float, seconds: int
) -> None:
    checks = await run_against_reference(tmp_path, calibration_pct, seconds, "rw")
    verdicts = [c.verdict for c in checks]
    first = verdicts.index(Verdict.WITHIN_CLASS)
    assert set(verdicts[:first]) == {Verdict.UNDECIDED}
    # The measured error moves within its bound (the polls bracket each edge), so the
    # verdict may waver to undecided while |true error| + 2 x bound > limit; it is never
    # outside, and once that margin holds it is within class for good.
    assert Verdict.OUTSIDE_CLASS not in verdicts
    settled = [
        c for c in checks if c.bound is not None and calibration_pct + 2 * c.bound_pct <= 0.5
    ]
    assert settled and {c.verdict for c in settled} == {Verdict.WITHIN_CLASS}


async def test_outside_class_against_a_reference_meter(tmp_path: Path) -> None:
    verdicts = [c.verdict for c in await run_against_reference(tmp_path, 2.0, 600, "ro")]
    first = verdicts.index(Verdict.OUTSIDE_CLASS)
    assert set(verdicts[:first]) == {Verdict.UNDECIDED}  # never within on the way
    assert verdicts[-1] is Verdict.OUTSIDE_CLASS


@pytest.mark.parametrize(
    ("url", "part"),
    [
        ("modbus-meters://h?energy=0", "scheme 'modbus-meters'"),
        ("modbus-meter://?energy=0", "no host"),
        ("modbus-meter://h", "no register named"),
        ("modbus-meter://h?energy=0&power=2", "energy/power"),
        ("modbus-meter://h?energy=x", "energy='x'"),
        ("modbus-meter://h?energy=0&type=string", "type='string'"),
        ("modbus-meter://h?energy=0&order=middle", "order='middle'"),
        ("modbus-meter://h?energy=0&scale=0", "scale='0'"),
        ("modbus-meter://h?energy=0&poll=1d", "poll='1d'"),
        ("modbus-meter://h?energy=0&uncertainty=9", "uncertainty='9'"),
        ("modbus-meter://h?energy=0&unit=300", "unit='300'"),
        ("modbus-meter://h?energy=0&colour=red", "unknown parameter 'colour'"),
    ],
)
def test_a_bad_reference_url_names_the_wrong_part(url: str, part: str) -> None:
    with pytest.raises(ConfigError) as caught:
        MirrorConfig("virtual://x", reference_url=url)
    message = str(caught.value)
    assert message.startswith("--reference: ") and part in message, message
    assert message.count("\n") == 0


def test_reference_url_defaults_and_the_stated_uncertainty() -> None:
    spec = ModbusMeterSpec.parse("modbus-meter://10.0.0.9?power=20", uncertainty_pct=0.2)
    assert (spec.port, spec.unit, spec.kind.value, spec.poll_s) == (502, 1, "float32", 1.0)
    assert spec.uncertainty_pct == 0.2
    with pytest.raises(ConfigError, match="exclude each other"):
        MirrorConfig(
            "virtual://x", profile="c12-accuracy", reference_url="modbus-meter://h?energy=0"
        )
