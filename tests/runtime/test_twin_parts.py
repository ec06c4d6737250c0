"""The Twin as a composition of parts: a half-started twin releases everything it
opened; one listener list for every meter's events; the last checkpoint on stop."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.helpers import find_free_port
from twin.core import ErrorCleared, ErrorRaised, Event, InjectError, MeterErrorKind
from twin.errors import ServeError, StoreError
from twin.runtime import LiveMeter, Twin, TwinConfig, load_fleet
from twin.store import Store, store_path


def _listening(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def _can_bind(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def test_a_twin_whose_second_port_is_taken_leaves_nothing_open(tmp_path: Path) -> None:
    first, second = find_free_port(), find_free_port()
    fleet_file = tmp_path / "fleet.yaml"
    fleet_file.write_text(
        f"fleet: 1\nmeters:\n  - {{unit: 1, port: {first}}}\n  - {{unit: 1, port: {second}}}\n"
    )
    state_dir, trace = tmp_path / "state", tmp_path / "trace.jsonl"
    cfg = TwinConfig(
        port=0, speed=None, fleet=load_fleet(fleet_file), state_dir=state_dir, trace_path=trace
    )
    blocker = _listening(second)
    try:
        twin = Twin(cfg)
        with pytest.raises(ServeError, match=f"{second} is in use"):
            await twin.start()
    finally:
        blocker.close()
    assert _can_bind(first)  # the first port's server was closed again
    with Store(store_path(state_dir)) as store:  # the store's lock was released
        assert store.serials() == []  # and a start that failed saved nothing
    assert twin.store is None and not twin.hooks.servers
    await twin.stop()  # stopping a twin that never started is harmless
    async with Twin(cfg) as again:  # everything is free for the next start
        assert sorted(again.ports) == sorted([first, second])


async def test_one_listener_list_for_every_meter_and_unsubscribe() -> None:
    cfg = TwinConfig(port=0, speed=None, meters=2)
    async with Twin(cfg) as twin:
        seen: list[tuple[str, list[Event]]] = []

        def listener(meter: LiveMeter, events: list[Event]) -> None:
            seen.append((meter.serial, events))

        unsubscribe = twin.subscribe(listener)
        first, second = twin.meters
        second.apply(InjectError(MeterErrorKind.MEMORY))
        assert [serial for serial, _ in seen] == [second.serial]
        assert isinstance(seen[0][1][0], ErrorRaised)
        twin.step(30)  # stepping publishes too (the power-up of both meters)
        assert {serial for serial, _ in seen[1:]} == {first.serial, second.serial}
        unsubscribe()
        unsubscribe()  # a second call does nothing
        count = len(seen)
        result = twin.control.run("clear_error", {"kind": "memory"}, serial=second.serial)
        assert not result.ok  # writes are off: control refuses ...
        events = second.apply(InjectError(MeterErrorKind.CALIBRATION))
        assert events and len(seen) == count  # ... and the listener is gone
        assert not any(isinstance(e, ErrorCleared) for _, evs in seen for e in evs)


async def test_stop_saves_the_last_checkpoint(tmp_path: Path) -> None:
    cfg = TwinConfig(port=0, speed=None, state_dir=tmp_path / "state")
    async with Twin(cfg) as twin:
        twin.step(3600)
        energy_uj = twin.meter().nv_state().energy_delivered_uj
    with Store(store_path(tmp_path / "state"), read_only=True) as store:
        saved = store.load(twin.meter().serial)
    assert saved is not None and saved.energy_delivered_uj == energy_uj


async def test_another_model_on_the_same_state_is_refused_and_releases_everything(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    async with Twin(TwinConfig(port=0, speed=None, state_dir=state, model="MMD-200A")) as twin:
        twin.step(600)
        energy_l2_uj = twin.meter().nv_state().energy_l2_uj
    assert energy_l2_uj > 0
    port = find_free_port()
    single = TwinConfig(port=port, speed=None, state_dir=state, model="MMS-200A")
    with pytest.raises(StoreError, match=r"saved as a MMD-200A.*as a MMS-200A"):
        async with Twin(single):
            pass
    assert _can_bind(port)
    # the store was released and is untouched: the same model continues the meter
    async with Twin(TwinConfig(port=0, speed=None, state_dir=state, model="MMD-200A")) as twin:
        assert twin.meter().nv_state().energy_l2_uj == energy_l2_uj
