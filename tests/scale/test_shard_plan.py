"""Shard assignment (`twin.runtime.shard`), `--shard` parsing and `minimeter fleet plan`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import REPO
from twin.errors import ConfigError
from twin.loadprofile import load_profile
from twin.runtime import FleetSpec, TwinConfig, parse_fleet
from twin.runtime.shard import SHARDS_ENV, ShardSpec, parse_shard, plan_shards, shard_fleet


def fleet_of(counts: list[int], first_port: int = 7000, profile: str = "default") -> FleetSpec:
    meters = [
        {"unit": u, "port": first_port + k, "profile": profile}
        for k, n in enumerate(counts)
        for u in range(1, n + 1)
    ]
    return parse_fleet({"fleet": 1, "meters": meters}, "test")


@given(st.lists(st.integers(1, 247), min_size=1, max_size=40), st.integers(1, 40))
def test_plan_is_a_contiguous_partition_of_ports(counts: list[int], n: int) -> None:
    fleet = fleet_of(counts)
    if n > len(counts):
        with pytest.raises(ConfigError, match="never split"):
            plan_shards(fleet, n)
        return
    plan = plan_shards(fleet, n)
    assert plan == plan_shards(fleet, n)  # deterministic
    assert [p for ports in plan for p in ports] == sorted(fleet.ports)
    assert all(plan)  # no shard is empty
    # Balanced: a shard holds at most its share plus one port's worth of meters.
    per_port = dict(zip(range(7000, 7000 + len(counts)), counts, strict=True))
    share = sum(counts) / n
    for ports in plan:
        load = sum(per_port[p] for p in ports)
        assert load <= share + max(counts) or len(ports) == 1


def test_even_fleet_splits_evenly_and_shards_cover_it_once() -> None:
    fleet = fleet_of([200] * 20)
    plan = plan_shards(fleet, 4)
    assert [len(p) for p in plan] == [5, 5, 5, 5]
    served = [m.serial for i in range(4) for m in shard_fleet(fleet, ShardSpec(i, 4)).meters]
    assert sorted(served) == sorted(m.serial for m in fleet.meters)


def test_a_sharded_meter_keeps_its_whole_fleet_seed() -> None:
    fleet = fleet_of([3, 3, 3], profile="residential-day")
    base = load_profile("residential-day").spec.seed
    part = shard_fleet(fleet, ShardSpec(2, 3))
    assert [m.seed for m in part.meters] == [base + 6, base + 7, base + 8]


def test_rtu_only_fleet_cannot_be_sharded() -> None:
    meters = [{"unit": 1}, {"unit": 2}]
    fleet = parse_fleet({"fleet": 1, "meters": meters}, "rtu", tcp=False)
    with pytest.raises(ConfigError, match="cannot be sharded"):
        plan_shards(fleet, 1)


@pytest.mark.parametrize(
    ("text", "env", "host", "expected"),
    [
        ("0/4", {}, "x", ShardSpec(0, 4)),
        ("3/4", {}, "x", ShardSpec(3, 4)),
        ("auto", {SHARDS_ENV: "4"}, "minimeter-2", ShardSpec(2, 4)),
        ("auto", {SHARDS_ENV: "8"}, "twin-a-7.minimeter.ns.svc", ShardSpec(7, 8)),
    ],
)
def test_parse_shard(text: str, env: dict[str, str], host: str, expected: ShardSpec) -> None:
    assert parse_shard(text, env=env, hostname=host) == expected


@pytest.mark.parametrize(
    ("text", "env", "host", "message"),
    [
        ("4/4", {}, "x", "shard 4 of 4 does not exist; expected I in 0..3"),
        ("0/0", {}, "x", "N out of range"),
        ("1-4", {}, "x", "expected I/N"),
        ("auto", {SHARDS_ENV: "4"}, "laptop", "has no ordinal"),
        ("auto", {}, "minimeter-1", f"{SHARDS_ENV}=None"),
        ("auto", {SHARDS_ENV: "four"}, "minimeter-1", "expected the shard count"),
        ("auto", {SHARDS_ENV: "2"}, "minimeter-2", "shard 2 of 2 does not exist"),
    ],
)
def test_bad_shard_values(text: str, env: dict[str, str], host: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        parse_shard(text, env=env, hostname=host)


def test_config_refuses_a_shard_without_enough_ports() -> None:
    with pytest.raises(ConfigError, match="1 port"):
        TwinConfig(meters=3, port=0, shard=ShardSpec(1, 2))
    assert len(TwinConfig(meters=3, port=0, shard=ShardSpec(0, 1)).resolved.meters) == 3


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "twin", *args]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)


def test_fleet_plan_prints_what_the_shards_serve(tmp_path: Path) -> None:
    meters = [{"unit": u, "port": p} for p in (7001, 7002, 7003) for u in (1, 2)]
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump({"fleet": 1, "meters": meters}))
    text = _cli("fleet", "plan", str(path), "--shards", "2")
    assert text.returncode == 0, text.stderr
    assert text.stdout.splitlines() == [
        "shard 0/2: 4 meters on 2 port(s) 7001-7002",
        "shard 1/2: 2 meters on 1 port(s) 7003",
        "6 meters, 3 ports, 2 shards",
    ]
    shards = json.loads(_cli("fleet", "plan", str(path), "--shards", "2", "--json").stdout)
    assert [s["ports"] for s in shards["shards"]] == [[7001, 7002], [7003]]
    assert shards["shards"][1]["serials"] == ["MM07003001", "MM07003002"]
    bad = _cli("fleet", "plan", str(path), "--shards", "4")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1
    assert "3 port(s) for 4 shards" in bad.stderr
    bad = _cli("run", "--fleet", str(path), "--shard", "2/2", "--no-state")
    assert bad.returncode == 1 and "expected I in 0..1" in bad.stderr
    assert bad.stderr.count("\n") == 1


async def test_a_sharded_meter_keeps_its_whole_fleet_error_curve() -> None:
    """``--accuracy-seed`` with ``--shard``: meter k's error curve is the seed plus its
    position in the whole fleet, whichever shard serves it, so each meter of shard I/N
    registers (over Modbus) exactly what it does in the unsharded fleet."""
    from tests.helpers import find_free_port
    from twin.modbus.client import MeterClient
    from twin.runtime import Twin

    ports = [find_free_port() for _ in range(3)]
    meters = [{"unit": u, "port": p} for p in ports for u in (1, 2)]
    fleet = parse_fleet({"fleet": 1, "meters": meters}, "test")

    async def served_uj(shard: ShardSpec | None) -> dict[str, tuple[int, int]]:
        cfg = TwinConfig(fleet=fleet, accuracy_seed=7, speed=None, shard=shard)
        async with Twin(cfg) as twin:
            twin.step(6 * 3600)
            out = {}
            for m in twin.meters:
                async with MeterClient(port=twin.served_port(m.spec.port) or 0) as c:
                    c.unit = m.spec.unit
                    wh = await c.read_uint(0, 4)
                out[m.serial] = (m.snapshot.energy_delivered_uj, wh)
            return out

    whole = await served_uj(None)
    assert len({uj for uj, _ in whole.values()}) == len(whole)  # six error curves
    sharded: dict[str, tuple[int, int]] = {}
    for i in range(3):
        sharded |= await served_uj(ShardSpec(i, 3))
    assert sharded == whole
