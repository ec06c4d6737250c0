"""`minimeter fleet plan FILE --shards N`: which ports (and so meters) each shard serves.

The plan is :func:`twin.runtime.shard.plan_shards`, the very function ``minimeter run
--shard I/N`` serves by, so what this prints is what the shards do. Text: one line per
shard (ports as ranges, meter count); ``--json``: ``{"shards": [{"shard": "0/4",
"ports": [...], "meters": n, "serials": [first, last]}, ...]}`` for scripts and tests.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from twin.runtime.fleet import load_fleet
from twin.runtime.shard import plan_shards


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="fleet_command", metavar="ACTION", required=True)
    plan = sub.add_parser("plan", help="print which ports each of N shards serves")
    plan.add_argument("file", type=Path, help="a YAML fleet file")
    plan.add_argument("--shards", type=int, required=True, help="the shard count N")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")


def port_ranges(ports: list[int]) -> str:
    """``[5020, 5021, 5022, 5030]`` -> ``5020-5022,5030``."""
    runs: list[list[int]] = []
    for port in sorted(ports):
        if runs and port == runs[-1][1] + 1:
            runs[-1][1] = port
        else:
            runs.append([port, port])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def main(args: argparse.Namespace) -> int:
    fleet = load_fleet(args.file)
    plan = plan_shards(fleet, args.shards, source=str(args.file))
    rows = []
    for i, ports in enumerate(plan):
        mine = set(ports)
        meters = [m for m in fleet.meters if m.port in mine]
        rows.append(
            {
                "shard": f"{i}/{args.shards}",
                "ports": ports,
                "meters": len(meters),
                "serials": [meters[0].serial, meters[-1].serial],
            }
        )
    if args.json:
        print(json.dumps({"file": str(args.file), "shards": rows}, indent=1))
        return 0
    width = len(str(max(int(str(r["meters"])) for r in rows)))
    for r, ports in zip(rows, plan, strict=True):
        print(
            f"shard {r['shard']}: {r['meters']:>{width}} meters on {len(ports)} port(s) "
            f"{port_ranges(ports)}"
        )
    print(f"{len(fleet.meters)} meters, {len(fleet.ports)} ports, {args.shards} shards")
    return 0
