"""Acceptance: four `minimeter run --shard I/4` processes serve one 4,000-meter fleet.

The fleet is 20 ports x 200 unit ids on free loopback ports; the ports cycle through
five shipped profiles (``residential-day`` is noisy: its meters' seeds are the
profile's plus their position in the file), so meters register different energies.
The shards run at x900 and freeze at 900 s of meter time (``--until``), so every
meter's energy is a fixed number: the test computes it for a sample of meters with
a fresh core driven over the same profile and seed, checks each shard listens on
exactly its planned ports (so each meter is served by one process), and reads serial
and energy over Modbus from every shard. Then one shard is SIGKILLed: the others
keep serving the same values in the same processes, and the restarted shard serves
its meters from its store (nothing after its last checkpoint is lost: here the
checkpoint holds the frozen energy) and then goes on registering.
"""

from __future__ import annotations

import asyncio
import functools
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO, wait_for_line
from twin.core import MeterConfig, MeterCore, MeterModel
from twin.drive import drive
from twin.loadprofile import Profile, load_profile
from twin.modbus.client import MeterClient, decode_string, decode_uint
from twin.runtime import FleetSpec, load_fleet
from twin.runtime.shard import plan_shards
from twin.store.sqlite import Store, store_path

PORTS, UNITS, SHARDS = 20, 200, 4
UNTIL_S = 900
SAMPLE_UNITS = (1, 117, 200)
PROFILES = ("default", "residential-day", "commercial-hvac", "ev-charging", "motor-start")
ENERGY, SERIAL = (0, 4), (108, 16)  # register map: energy_delivered_wh, serial_number


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = sorted(int(s.getsockname()[1]) for s in socks)
    for s in socks:
        s.close()
    return ports


@dataclass
class Shard:
    index: int
    argv: list[str]
    proc: subprocess.Popen[str]
    ports: list[int]

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)


def start_shard(index: int, fleet: Path, state: Path, log: Path) -> Shard:
    argv = [
        sys.executable, "-m", "twin", "run", "--fleet", str(fleet), "--shard",
        f"{index}/{SHARDS}", "--state-dir", str(state / f"shard-{index}"),
        "--speed", "900", "--tick", "0.5", "--until", str(UNTIL_S),
        "--checkpoint-interval", "0.5",
    ]  # fmt: skip
    return _spawn(index, argv, log)


def _spawn(index: int, argv: list[str], log: Path) -> Shard:
    with log.open("a") as err:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True)
    line = wait_for_line(proc, "serving", timeout_s=120)
    ports = [int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", line)]
    return Shard(index, argv, proc, ports)


@pytest.fixture(scope="module")
def fleet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ports = free_ports(PORTS)
    meters = [
        {"unit": u, "port": p, "profile": PROFILES[k % len(PROFILES)]}
        for k, p in enumerate(ports)
        for u in range(1, UNITS + 1)
    ]
    path = tmp_path_factory.mktemp("fleet") / "fleet.yaml"
    path.write_text(
        yaml.safe_dump({"fleet": 1, "defaults": {"model": "MMD-200A"}, "meters": meters})
    )
    return path


@pytest.fixture(scope="module")
def shards(fleet_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Shard]]:
    state = tmp_path_factory.mktemp("state")
    logs = tmp_path_factory.mktemp("logs")
    started: list[Shard] = []
    try:
        for i in range(SHARDS):
            started.append(start_shard(i, fleet_file, state, logs / f"shard-{i}.log"))
        for shard in started:  # every meter frozen at UNTIL_S
            wait_for_line(shard.proc, f"t={UNTIL_S}s", timeout_s=120)
        yield started
    finally:
        for shard in started:
            shard.kill()


@functools.cache
def _profile(name: str) -> Profile:
    return load_profile(name)


def expected_energy_wh(profile: str, seed: int) -> int:
    """A fresh core driven over the profile for UNTIL_S samples of 1 s."""
    core = MeterCore(MeterConfig(model=MeterModel.parse("MMD-200A"), serial_number="X"))
    for _ in drive(core, _profile(profile).sampler(seed), 0.0, 1.0, UNTIL_S):
        pass
    return core.snapshot().energy_delivered_wh


async def read_meters(targets: list[tuple[int, int]]) -> dict[tuple[int, int], tuple[str, int]]:
    """(port, unit) -> (serial, energy Wh) over Modbus TCP."""
    out = {}
    for port in sorted({p for p, _ in targets}):
        async with MeterClient(port=port) as client:
            for p, unit in targets:
                if p != port:
                    continue
                client.unit = unit
                serial = decode_string(await client.read_registers(*SERIAL))
                out[(p, unit)] = (serial, decode_uint(await client.read_registers(*ENERGY)))
    return out


@functools.cache
def _fleet(path: Path) -> FleetSpec:
    return load_fleet(path)


@functools.cache
def _sample(fleet_file: Path) -> dict[tuple[int, int], tuple[str, int]]:
    """(port, unit) -> (serial, expected energy) for SAMPLE_UNITS of every port."""
    fleet = _fleet(fleet_file)
    out = {}
    for position, m in enumerate(fleet.meters):
        if m.unit in SAMPLE_UNITS:
            assert m.port is not None
            seed = _profile(m.profile).spec.seed + position
            out[(m.port, m.unit)] = (m.serial, expected_energy_wh(m.profile, seed))
    return out


@pytest.mark.timeout(300)  # starts four 1,000-meter twins: slow on a loaded machine
def test_each_meter_is_served_by_exactly_one_shard(fleet_file: Path, shards: list[Shard]) -> None:
    plan = plan_shards(_fleet(fleet_file), SHARDS)
    assert [s.ports for s in shards] == plan  # each listens on exactly its planned ports
    served = [p for s in shards for p in s.ports]
    assert len(served) == len(set(served)) == PORTS  # disjoint, and together the fleet
    expected = _sample(fleet_file)
    got = asyncio.run(read_meters(sorted(expected)))
    assert got == expected  # its own serial and its own energy, from its own shard
    assert len({e for _, e in expected.values()}) >= len(PROFILES)  # meters differ


@pytest.mark.timeout(300)
def test_sigkill_one_shard_restart_loses_nothing_checkpointed(
    fleet_file: Path, shards: list[Shard], tmp_path: Path
) -> None:
    expected = _sample(fleet_file)
    victim, others = shards[2], [s for s in shards if s is not shards[2]]
    mine = [k for k in expected if k[0] in victim.ports]
    store = Path(victim.argv[victim.argv.index("--state-dir") + 1])
    # Wait until a checkpoint after the freeze is in the store (checkpoints every 0.5 s).
    frozen_uj = {}
    for _ in range(600):
        ro = Store(store_path(store), read_only=True)
        try:
            states = {k: ro.load(expected[k][0]) for k in mine}
        finally:
            ro.close()
        wh = {
            k: None if s is None else s.energy_delivered_uj // 3_600_000_000
            for k, s in states.items()
        }
        if all(wh[k] == expected[k][1] for k in mine):
            frozen_uj = {k: s.energy_delivered_uj for k, s in states.items() if s is not None}
            break
        asyncio.run(asyncio.sleep(0.05))
    assert frozen_uj, "the frozen energy never reached the victim's store"
    pids = [s.proc.pid for s in others]
    victim.proc.send_signal(signal.SIGKILL)
    victim.proc.communicate(timeout=10)
    assert victim.proc.returncode == -signal.SIGKILL
    # The others are untouched: same processes, same answers.
    others_keys = [k for k in expected if k[0] not in victim.ports]
    assert asyncio.run(read_meters(others_keys)) == {k: expected[k] for k in others_keys}
    assert [s.proc.pid for s in others] == pids and all(s.proc.poll() is None for s in others)
    # Restarted with the same command: its meters continue from the store...
    restarted = _spawn(victim.index, victim.argv, tmp_path / "restart.log")
    shards[2] = restarted
    first = asyncio.run(read_meters(mine))
    for k in mine:
        assert first[k][0] == expected[k][0]
        assert first[k][1] >= expected[k][1]  # nothing checkpointed was lost
    # ... and register the profile again on top (a restart is not a new meter).
    wait_for_line(restarted.proc, f"t={UNTIL_S}s", timeout_s=120)
    final = asyncio.run(read_meters(mine))
    for k in mine:
        again = expected[k][1]
        assert again * 2 - 1 <= final[k][1] <= again * 2 + 1
