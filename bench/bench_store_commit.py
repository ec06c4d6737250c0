"""What committing every step costs a fleet, beside stepping it without a store.

An in-process twin (manual clock, a state dir in a temporary directory) of ``N``
meters on one profile steps its fleet by ``--step`` meter seconds per round, as the
live tick does, alternating two kinds of round in the same run:

- *plain*: the step rebuilds every meter's image at once (a twin without a store);
- *committed*: the meters step deferred, then ``StepCommitter.commit_and_publish``
  gathers a slice's NvStates, commits the changed rows (in the WAL without fsync, a
  durable commit every ``--durable-every`` rounds) and publishes the slice (images
  rebuilt) - exactly what ``tick_part`` does after each step.

Figures are process CPU time per round (the worker thread's commit included; wall
time in brackets also waits for the disk and the machine), medians of ``--rounds``:

    .venv/bin/python bench/bench_store_commit.py [--meters 10000] [--tick 1.0]

``--tick`` is the fleet tick the slice is sized for (``fleet_tick_s``: 1 s at 10,000
meters, 0.1 s up to 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from bench_fleet import free_ports


async def run(args: argparse.Namespace, state_dir: Path) -> None:
    from twin.core import MeterModel
    from twin.runtime import Twin, TwinConfig
    from twin.runtime.committing import StepCommitter
    from twin.runtime.fleet import FleetSpec, MeterSpec
    from twin.runtime.meters import nv_items

    n = args.meters
    model = MeterModel.parse("MMD-200A")
    ports = free_ports(-(-n // 200))
    meters = tuple(
        MeterSpec(
            unit=1 + i % 200, port=ports[i // 200], model=model, profile=args.profile,
            serial=f"MM{i:08d}",
        )
        for i in range(n)
    )  # fmt: skip
    config = TwinConfig(fleet=FleetSpec(meters), speed=None, state_dir=state_dir)
    cpu: dict[str, list[float]] = {"plain": [], "committed": []}
    wall: dict[str, list[float]] = {"plain": [], "committed": []}
    async with Twin(config) as twin:
        cp = twin.checkpointer
        assert cp is not None
        twin.step(5.0)  # past the boot screen
        cp.commit(nv_items(twin.meters), durable=True)  # every row exists from here on
        committer = StepCommitter(cp, twin.meters, args.tick, lambda: twin.meter_time_s)
        cp.interval_s = args.tick * args.durable_every  # durable every that many commits
        for i in range(2 * args.rounds):
            kind = "committed" if i % 2 else "plain"
            for m in twin.meters:
                m.deferred = kind == "committed"
            c0, w0 = time.process_time(), time.perf_counter()
            twin.step(args.step)
            if kind == "committed":
                await committer.commit_and_publish()
            cpu[kind].append(time.process_time() - c0)
            wall[kind].append(time.perf_counter() - w0)
        rows, commits, durable = cp.rows, cp.commits, cp.checkpoints
    med = statistics.median
    plain, committed = med(cpu["plain"]), med(cpu["committed"])
    print(
        f"{n} meters on {args.profile}, {args.rounds} rounds of each kind, a {args.step:g} s "
        f"step; slice {committer.size} meters (a meter committed every "
        f"{committer.ticks_per_round} tick(s) of {args.tick:g} s)"
    )
    print(f"  plain round:     {plain * 1e3:7.1f} ms CPU ({med(wall['plain']) * 1e3:.0f} ms wall)")
    print(
        f"  committed round: {committed * 1e3:7.1f} ms CPU "
        f"({med(wall['committed']) * 1e3:.0f} ms wall) = {committed / plain:.2f} x plain"
    )
    print(
        f"  {commits - 1} commits ({durable - 1} durable) wrote {rows - n} rows, "
        f"{(rows - n) / args.rounds:.0f} per round"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meters", type=int, default=10_000)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--step", type=float, default=1.0, help="meter seconds per round (1)")
    ap.add_argument("--tick", type=float, default=1.0, help="the fleet tick, s (1)")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--durable-every", type=int, default=5, help="rounds per fsync (5)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-commit-") as tmp:
        asyncio.run(run(args, Path(tmp) / "state"))


if __name__ == "__main__":
    main()
