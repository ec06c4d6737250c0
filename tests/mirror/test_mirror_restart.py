"""A mirror restart continues: demand and maximum demand (through the twin's store) and
the cross-check's cumulative window (``mirror-state.json``), even after SIGKILL."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from devices import open_sink
from tests.devices.fakes import CounterModule
from tests.helpers import find_free_port
from tests.mirror.standin import StandIn, pf1_profile, until
from tests.mirror.test_mirror_cli import KH, start_mirror, wait_served
from twin.mirror import STATE_FILE, MirrorConfig
from twin.mirror.pulse_out import PulseOut
from twin.mirror.state import load_state
from twin.runtime import Twin, TwinConfig


async def test_demand_and_max_demand_survive_a_mirror_restart(tmp_path: Path) -> None:
    stand = StandIn(pf1_profile(tmp_path))
    config = TwinConfig(
        port=0,
        speed=None,
        state_dir=tmp_path / "state",
        mirror=MirrorConfig("virtual://restart?kh=10", refresh_s=None),
    )
    async with PulseOut(open_sink("virtual://restart")) as out:
        async with Twin(config) as twin:
            mirror = twin.mirror
            assert mirror is not None
            out.on_events(stand.step(1200))  # 2.4 kW for 20 minutes
            await out.flush()
            await until(lambda: mirror.source.total_counts == out.sink.closures, "pulses")
            before = twin.meters[0].snapshot
        assert before.demand_max_kw > 2.0 and before.demand_valid == 1
        async with Twin(config) as twin:
            after = twin.meters[0].snapshot
            assert after.energy_delivered_wh == before.energy_delivered_wh
            assert after.demand_max_kw == before.demand_max_kw
            assert after.demand_max_at_s == before.demand_max_at_s
            assert after.demand_kw == before.demand_kw


async def test_sigkill_continues_the_cross_check_window(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    async def count(raw: int) -> None:
        await counter_module.set_counter(3, 0, raw, low_word_first=True)

    await count(0)
    port, state = find_free_port(), tmp_path / "state"
    args = (
        "--source",
        f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh={KH}&poll=20ms",
        "--profile",
        "c12-accuracy",
        "--port",
        str(port),
        "--state-dir",
        str(state),
        "--status",
        "0.2",
    )
    proc, first = start_mirror(*args)
    try:
        assert "window continued" not in first
        await wait_served(port, 0)
        await asyncio.sleep(0.5)  # the first polls take the baseline
        for raw in range(1, 6):
            await count(raw)
            await wait_served(port, raw * KH)
        for _ in range(200):  # saved at most every second
            saved = load_state(state / STATE_FILE)
            if saved is not None and len(saved.marks) >= 5:
                break
            await asyncio.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    saved = load_state(state / STATE_FILE)
    assert saved is not None and saved.marks
    window_start = saved.marks[0]
    await count(8)  # pulses while the mirror was dead
    proc, first = start_mirror(*args)
    try:
        assert "8 counts restored" not in first  # the restart counts them after it starts
        assert "window continued" in first
        await wait_served(port, 80)
        await count(9)
        await wait_served(port, 90)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
    assert proc.returncode == 0
    after = load_state(state / STATE_FILE)
    assert after is not None
    assert after.marks[0] == window_start  # the same cumulative window
    assert after.epoch_unix_s == saved.epoch_unix_s  # mirror time went on
    assert after.marks[-1].counts == 9 and after.marks[-1].at_s > window_start.at_s
