"""Follow mode: the physical meter's pulses served as the twin's registers.

Pure part against hand-computed figures, then over Modbus: a stand-in's 10 Wh output
through the virtual wire, read back by a SCADA client from the mirror's server.
"""

from __future__ import annotations

import math
from pathlib import Path

from devices import open_sink
from tests.mirror.standin import StandIn, pf1_profile, until
from twin.core import MeterModel, StatusBit
from twin.mirror import Follow, MirrorConfig, with_mirror_bits
from twin.mirror.pulse_out import PulseOut
from twin.modbus.client import MeterClient
from twin.runtime import Twin, TwinConfig

MODEL = MeterModel.parse("MMD-200A")


def test_power_from_edge_intervals_and_its_decay() -> None:
    follow = Follow(wh_per_count=5)  # both edges of the 10 Wh output: Kh/2 each
    assert follow.power_w(10.0) == 0.0  # nothing counted yet
    follow.count(1, 10.0)
    assert follow.power_w(10.0) == 0.0  # one edge: no interval yet
    follow.count(2, 25.0)
    assert follow.power_w(25.0) == 1800 * 10 / 15  # P = 1800 Kh / dt
    assert follow.power_w(30.0) == 1800 * 10 / 15  # the next edge may still come
    assert follow.power_w(85.0) == 3600 * 5 / 60  # no edge for 60 s: at most one count
    follow.count(4, 35.0)  # two counts in one poll: the mean over the span
    assert follow.power_w(35.0) == 3600 * 10 / 10


def test_energy_pulses_and_outputs_follow_the_counts() -> None:
    follow = Follow(wh_per_count=10)
    follow.count(1234, 100.0)
    snap = follow.snapshot(100.0, model=MODEL, serial_number="M1")
    assert snap.energy_delivered_wh == 12_340
    assert snap.energy_delivered_hwh == 123
    assert snap.pulses_10wh == 1234 and snap.pulses_100wh == 123 and snap.pulses_1000wh == 12
    assert math.isnan(snap.voltage_l1_v) and math.isnan(snap.power_factor_l1)
    marked = with_mirror_bits(snap, stale=True, outside_class=False)
    assert marked.status_bits == 1 << StatusBit.MIRROR_INPUT_STALE
    assert with_mirror_bits(marked, stale=False, outside_class=True).status_bits == (
        1 << StatusBit.MIRROR_OUTSIDE_CLASS
    )


def test_demand_from_counted_energy() -> None:
    follow = Follow(wh_per_count=10)
    # 3.6 kW: one 10 Wh count every 10 s for 20 minutes.
    for n in range(1, 121):
        follow.count(n, 10.0 * n)
    snap = follow.snapshot(1200.0, model=MODEL, serial_number="M1")
    # Three 5-minute sub-intervals closed at 300, 600, 900 s; each holds 30 counts.
    assert snap.demand_valid == 1
    assert math.isclose(snap.demand_kw, 3.6, rel_tol=1e-12)


async def test_follow_mode_serves_the_stand_ins_energy_and_power_over_modbus(
    tmp_path: Path,
) -> None:
    """The mirror as a part of a Twin: its one meter serves the followed registers."""
    stand = StandIn(pf1_profile(tmp_path))
    config = TwinConfig(
        port=0,
        speed=None,
        allow_writes=True,
        mirror=MirrorConfig("virtual://follow?kh=10", refresh_s=None),
    )
    async with (
        PulseOut(open_sink("virtual://follow")) as out,
        Twin(config) as twin,
        MeterClient(port=twin.port) as client,
    ):
        mirror = twin.mirror
        assert mirror is not None
        for _ in range(12):  # an hour in 5-minute steps
            out.on_events(stand.step(300))
            await out.flush()
            await until(lambda: mirror.source.total_counts == out.sink.closures, "mirror")
            energy_wh = await client.read_uint(0, 4)
            power_w = await client.read_float32(20)
            mode = (await client.read_registers(70, 1))[0]
            assert mode == 1
            assert abs(energy_wh - stand.energy_wh) <= 10  # within one pulse
            assert twin.meters[0].snapshot.energy_delivered_wh == energy_wh  # MQTT/HTTP see it
            # 2400 W: one closure every 15 s, timestamped to the microsecond.
            true_w = stand.core.snapshot().power_w
            assert math.isclose(power_w, true_w, rel_tol=1e-5)
        demand_kw = await client.read_float32(42)
        assert abs(demand_kw - 2.4) <= 3600 * 10 / 300 / 1000  # a pulse per 5 min
        refused = twin.control.run("reset_max_demand", {})  # the core's command: not here
        assert not refused.ok and "mirrors a physical meter" in (refused.error or "")
