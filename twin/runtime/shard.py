"""Shards: which meters of one fleet file a process serves (``--shard I/N``).

Theory of operation
-------------------
A large fleet runs as N processes (``minimeter run --workers K`` on one host, or a
Kubernetes StatefulSet of N pods) that all read the same fleet file. Each serves one
shard; :func:`plan_shards` decides which, deterministically, from the file alone:

- the unit of assignment is a TCP **port** (a port's unit ids are served by one
  listening socket, so one port is never split across processes);
- ports are taken in ascending order and cut into N contiguous runs balanced by meter
  count: a port goes to the shard whose share of the fleet its middle meter falls in,
  so shard I serves roughly meters I*M/N..(I+1)*M/N; no shard is left empty (a fleet
  needs at least N ports).

The same file and N always give the same plan (``minimeter fleet plan FILE --shards
N`` prints it). Changing N moves ports between shards: a moved meter's state stays
in its old shard's store (see ``docs/scale.md``).

A meter behaves the same in every shard: :func:`shard_fleet` pins each meter's noise
seed to what it would be in the whole fleet (the profile's seed plus the meter's
position in the file) and its position (its error curve under ``--accuracy-seed`` is
the seed plus that position), so a sharded meter registers what the unsharded one would.

``--shard auto`` (:func:`parse_shard`) reads I from a StatefulSet pod's hostname
(``name-<ordinal>``) and N from the ``MINIMETER_SHARDS`` environment variable.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace

from twin.errors import ConfigError
from twin.loadprofile import load_profile
from twin.runtime.fleet import FleetSpec

SHARDS_ENV = "MINIMETER_SHARDS"  # N for --shard auto
MAX_SHARDS = 1024
_SHARD = re.compile(r"^(\d+)/(\d+)$")
_ORDINAL = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?-(\d+)$")


@dataclass(frozen=True, slots=True)
class ShardSpec:
    """Shard ``index`` of ``count`` (0-based, as a StatefulSet ordinal)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS:
            raise ConfigError(f"--shard {self}: N out of range; expected 1..{MAX_SHARDS}")
        if not 0 <= self.index < self.count:
            raise ConfigError(
                f"--shard {self}: shard {self.index} of {self.count} does not exist; "
                f"expected I in 0..{self.count - 1}"
            )

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(
    text: str, *, env: Mapping[str, str] | None = None, hostname: str | None = None
) -> ShardSpec:
    """``I/N`` or ``auto`` (ordinal of ``hostname`` = ``name-<I>``, N from the env)."""
    if text != "auto":
        m = _SHARD.match(text.strip())
        if m is None:
            raise ConfigError(f"--shard {text!r}: expected I/N (e.g. 0/4, I in 0..N-1) or auto")
        return ShardSpec(int(m[1]), int(m[2]))
    env = os.environ if env is None else env
    host = hostname if hostname is not None else socket.gethostname()
    m = _ORDINAL.match(host.split(".")[0])
    if m is None:
        raise ConfigError(
            f"--shard auto: hostname {host!r} has no ordinal; expected a StatefulSet pod "
            "name like minimeter-3 (or give --shard I/N)"
        )
    raw = env.get(SHARDS_ENV)
    if raw is None or not raw.strip().isdigit():
        raise ConfigError(
            f"--shard auto: {SHARDS_ENV}={raw!r}; expected the shard count N "
            "(the StatefulSet's replicas) in the environment"
        )
    return ShardSpec(int(m[2]), int(raw))


def plan_shards(fleet: FleetSpec, count: int, *, source: str = "fleet") -> list[list[int]]:
    """The ports of each of ``count`` shards (ascending, contiguous, by meter count)."""
    if not 1 <= count <= MAX_SHARDS:
        raise ConfigError(f"{count} shards: out of range; expected 1..{MAX_SHARDS}")
    per_port: dict[int, int] = {}
    for m in fleet.meters:
        if m.port is None:
            raise ConfigError(
                f"{source}: meters without a TCP port cannot be sharded (shards split a "
                "fleet by port); expected every meter to have a port"
            )
        per_port[m.port] = per_port.get(m.port, 0) + 1
    ports = sorted(per_port)
    if len(ports) < count:
        raise ConfigError(
            f"{source}: {len(ports)} port(s) for {count} shards; a port is never split "
            f"across processes, so expected at most {len(ports)} shards"
        )
    total = len(fleet.meters)
    plan: list[list[int]] = [[] for _ in range(count)]
    shard, before = 0, 0
    for k, port in enumerate(ports):
        ports_left = len(ports) - k  # this one included
        if plan[shard] and shard < count - 1:
            middle = before + per_port[port] / 2
            past_share = middle * count > total * (shard + 1)
            if past_share or ports_left <= count - shard - 1:
                shard += 1
        plan[shard].append(port)
        before += per_port[port]
    return plan


def shard_fleet(fleet: FleetSpec, shard: ShardSpec, *, source: str = "fleet") -> FleetSpec:
    """The meters shard ``shard`` serves, each with its whole-fleet noise seed pinned."""
    ports = set(plan_shards(fleet, shard.count, source=source)[shard.index])
    seeds: dict[str, int] = {}
    meters = []
    for position, spec in enumerate(fleet.meters):
        if spec.port not in ports:
            continue
        if spec.seed is None:  # the default seed is the profile's + the fleet position
            if spec.profile not in seeds:
                seeds[spec.profile] = load_profile(spec.profile).spec.seed
            spec = replace(spec, seed=seeds[spec.profile] + position)
        meters.append(replace(spec, position=position))
    return FleetSpec(tuple(meters), unknown_unit=fleet.unknown_unit)
