"""A running twin with a store shows a step to clients only once the step is committed
(`twin.runtime.committing`).

The twin runs on an accelerated clock with a long checkpoint interval, so almost every
step's commit is in the WAL without fsync; a read-only view of the store (a second
connection: it sees every commit that landed) is compared with what clients see:
the meter's published snapshot and register image, and the events its listeners get.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from twin.core import Event, NvState, PulseEdges
from twin.modbus.client import MeterClient
from twin.runtime import LiveMeter, Twin, TwinConfig
from twin.runtime.committing import COMMIT_ROWS_PER_S, StepCommitter, slice_size
from twin.runtime.meters import nv_items
from twin.store import Store, store_path

UJ_PER_WH = 3_600_000_000
PROFILE = """\
schema: 1
name: const-4800
segments:
  - kind: constant
    duration: 1000h
    L1: {voltage: 120, current: 20, pf: 1.0}
    L2: {voltage: 120, current: 20, pf: 1.0}
"""


async def test_clients_never_see_energy_the_store_has_not_committed(tmp_path: Path) -> None:
    profile = tmp_path / "const.yaml"
    profile.write_text(PROFILE)
    state = tmp_path / "state"
    cfg = TwinConfig(
        profile=str(profile),
        port=0,
        speed=3600.0,  # 4.8 kWh of meter energy per wall second
        tick_s=0.01,
        state_dir=state,
        checkpoint_interval_s=60.0,  # durable at start and stop only
    )
    at_events: list[tuple[int, int]] = []  # (the core's energy, the store's) at each event
    compared = 0
    async with Twin(cfg) as twin:
        view = Store(store_path(state), read_only=True)

        def committed_uj() -> int:
            nv = view.load("MM00000001")
            return 0 if nv is None else nv.energy_delivered_uj

        def on_events(meter: LiveMeter, events: list[Event]) -> None:
            if any(isinstance(ev, PulseEdges) for ev in events):
                at_events.append((meter.nv_state().energy_delivered_uj, committed_uj()))

        unsubscribe = twin.subscribe(on_events)
        try:
            async with MeterClient(port=twin.port) as client:
                while compared < 200:
                    served_wh = await client.read_uint(0, 4)
                    published_uj = twin.meter().snapshot.energy_delivered_uj
                    stored_uj = committed_uj()
                    assert published_uj <= stored_uj and served_wh <= stored_uj // UJ_PER_WH
                    compared += 1
                    await asyncio.sleep(0.002)
        finally:
            unsubscribe()
            view.close()
        cp = twin.checkpointer
        assert cp is not None and cp.commits > 20 and cp.checkpoints == 1
    assert at_events and all(core == stored for core, stored in at_events)
    with Store(store_path(state)) as store:  # the clean stop kept the latest state
        final = store.load("MM00000001")
    assert (
        final is not None
        and final.energy_delivered_uj == twin.meter().nv_state().energy_delivered_uj
    )


def test_slice_size_bounds_the_rows_a_tick_commits() -> None:
    assert slice_size(1, 0.1) == 1
    assert slice_size(400, 0.1) == 400  # every meter, every tick
    assert slice_size(1_000, 0.1) == 400
    assert slice_size(10_000, 1.0) == COMMIT_ROWS_PER_S


async def test_a_large_fleet_is_committed_and_published_in_round_robin_slices(
    tmp_path: Path,
) -> None:
    profile = tmp_path / "const.yaml"
    profile.write_text(PROFILE)
    cfg = TwinConfig(
        profile=str(profile),
        port=0,
        meters=10,
        speed=None,
        state_dir=tmp_path / "state",
        checkpoint_interval_s=3600.0,
    )
    async with Twin(cfg) as twin:
        cp = twin.checkpointer
        assert cp is not None
        cp.commit(nv_items(twin.meters))  # the rows exist, durably
        # A tick of 1 ms: 4 meters a slice, so 3 ticks for the 10 meters.
        committer = StepCommitter(cp, twin.meters, 4 / COMMIT_ROWS_PER_S, lambda: twin.meter_time_s)
        assert committer.size == 4 and committer.ticks_per_round == 3
        for m in twin.meters:
            m.deferred = True
        twin.step(60.0)
        store = Store(store_path(tmp_path / "state"), read_only=True)
        try:

            def shown() -> list[bool]:
                return [m.snapshot.energy_delivered_uj > 0 for m in twin.meters]

            def stored() -> list[bool]:
                return [
                    (store.load(m.serial) or NvState()).energy_delivered_uj > 0 for m in twin.meters
                ]

            assert not any(shown()) and not any(stored())  # held: nothing shown yet
            expected = [[True] * 4 + [False] * 6, [True] * 8 + [False] * 2, [True] * 10]
            for want in expected:
                await committer.commit_and_publish()
                assert shown() == stored() == want
            commits = cp.commits
            await committer.commit_and_publish()  # no step since, nothing left to show
            assert cp.commits == commits
            twin.step(60.0)  # the next round goes on where the last slice ended
            await committer.commit_and_publish()
            assert [m.serial for m in twin.meters if m.snapshot.uptime_s > 70] == [
                m.serial for m in (*twin.meters[2:6],)
            ]
        finally:
            store.close()
