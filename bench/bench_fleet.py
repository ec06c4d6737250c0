"""A fleet of 1,000 live meters polled once a second each: p99 latency and memory.

Writes a fleet file of ``--ports`` ports × ``--units`` unit ids (default 5 × 200 =
1,000 meters, default profile, each its own serial and store record), starts
``minimeter run --fleet FILE --state-dir TMP`` (real time: every meter steps once a
second, checkpoints every 10 s) and, in a separate poller process on uvloop, polls
every meter once a second for ``--duration`` seconds: ``--conns`` connections per
port, each owning an equal share of the port's unit ids and reading 40 registers of
block A (FC03 at 0) from each of them in turn on an open-loop schedule spread evenly
over the second (as a SCADA scan does), one request in flight per connection.
Latency is send-to-complete-answer, measured by the poller (so it includes the
poller's own scheduling delays: a pessimistic figure). Answers are checked (the
transaction id, unit id, byte count). The twin's peak RSS is its ``VmHWM`` from
``/proc/PID/status``; CPU is its utime+stime over the polled window.

    .venv/bin/python bench/bench_fleet.py [--ports 5] [--units 200] [--duration 30]
    .venv/bin/python bench/bench_fleet.py --ports 50 --units 200 --max-rss-mb 1024  # 10,000

    .venv/bin/python bench/bench_fleet.py --stepping 10000 [PROFILE]  # CPU per meter-step
    .venv/bin/python bench/bench_fleet.py --stepping 5000 default --store  # + commit, publish

RSS and CPU are summed over the twin's process tree, so `--workers K` (shard
processes under one supervisor, when `minimeter run` has it) is measured whole.

Exits 1 if p99 > ``--max-p99-ms`` (20) or peak RSS > ``--max-rss-mb`` (300), or on
any error or timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [int(s.getsockname()[1]) for s in socks]
    for s in socks:
        s.close()
    return ports


async def _poll_connection(
    port: int, units: list[int], t0: float, end: float, phase: float, out: dict[str, list[float]]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    slot = 1.0 / len(units)
    tid, k = 0, 0
    while True:
        due = t0 + phase + k * slot
        if due >= end:
            break
        unit = units[k % len(units)]
        k += 1
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            out["late_s"].append(-delay)
        tid = (tid + 1) & 0xFFFF
        sent = time.perf_counter()
        writer.write(struct.pack(">HHHBBHH", tid, 0, 6, unit, 3, 0, 40))
        try:
            head = await asyncio.wait_for(reader.readexactly(9), 1.0)
            body = await asyncio.wait_for(reader.readexactly(head[8]), 1.0)
        except (TimeoutError, asyncio.IncompleteReadError):
            out["errors"].append(1.0)
            break
        latency = time.perf_counter() - sent
        if struct.unpack(">H", head[:2])[0] != tid or head[6] != unit or head[8] != 80:
            out["errors"].append(1.0)
        del body
        out["latency_s"].append(latency)
    writer.close()


async def _poller(
    ports: list[int], units: int, conns: int, warmup_s: float, duration_s: float
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"latency_s": [], "errors": [], "late_s": []}
    loop = asyncio.get_running_loop()
    t0 = loop.time() + warmup_s
    end = t0 + duration_s
    tasks = []
    for pi, port in enumerate(ports):
        ids = list(range(1, units + 1))
        for c in range(conns):
            share = ids[c::conns]
            # spread the connections' schedules over the second
            phase = ((pi * conns + c) / (len(ports) * conns)) / len(share)
            tasks.append(_poll_connection(port, share, t0, end, phase, out))
    await asyncio.gather(*tasks)
    return out


def poller_main(argv: list[str]) -> None:
    """Child process: poll, then print the samples as JSON."""
    ports = [int(p) for p in argv[0].split(",")]
    units, conns = int(argv[1]), int(argv[2])
    warmup_s, duration_s = float(argv[3]), float(argv[4])
    try:
        import uvloop

        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    except ImportError:
        runner = asyncio.Runner()
    with runner:
        out = runner.run(_poller(ports, units, conns, warmup_s, duration_s))
    json.dump(out, sys.stdout)


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (the shard workers of `run --workers K`)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                todo += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
    return out


def _proc_status(pid: int) -> dict[str, int]:
    """VmHWM and VmRSS (kB) summed over the process tree."""
    fields = {"VmHWM": 0, "VmRSS": 0}
    for p in _tree(pid):
        try:
            text = Path(f"/proc/{p}/status").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in fields:
                fields[key] += int(value.split()[0])
    return fields


def _cpu_s(pid: int) -> float:
    """utime + stime of the process tree (children that ended are counted by cutime)."""
    total = 0.0
    for p in _tree(pid):
        try:
            parts = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in parts[11:13])
    return total / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, default=5)
    ap.add_argument("--units", type=int, default=200, help="meters per port (<= 247)")
    ap.add_argument("--conns", type=int, default=4, help="poller connections per port (4)")
    ap.add_argument("--duration", type=float, default=30.0, help="polled seconds (30)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before polling counts")
    ap.add_argument("--profile", default="default")
    ap.add_argument("--max-p99-ms", type=float, default=20.0)
    ap.add_argument("--max-rss-mb", type=float, default=300.0)
    ap.add_argument("--workers", type=int, default=1, help="`run --workers K` (when it exists)")
    args = ap.parse_args()

    ports = free_ports(args.ports)
    with tempfile.TemporaryDirectory(prefix="mm-fleet-") as tmp:
        fleet = Path(tmp) / "fleet.yaml"
        lines = ["fleet: 1", f"defaults: {{profile: {args.profile}}}", "meters:"]
        lines += [f"  - {{unit: {u}, port: {p}}}" for p in ports for u in range(1, args.units + 1)]
        fleet.write_text("\n".join(lines) + "\n")
        cmd = [sys.executable, "-m", "twin", "run", "--fleet", str(fleet)]
        cmd += ["--state-dir", str(Path(tmp) / "state")]
        if args.workers > 1:
            cmd += ["--workers", str(args.workers)]
        t_start = time.monotonic()
        twin = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            assert twin.stdout is not None
            first = twin.stdout.readline()
            if "serving" not in first:
                raise SystemExit(f"twin did not start: {first!r}")
            startup_s = time.monotonic() - t_start
            poll_cmd = [sys.executable, __file__, "--poller", ",".join(map(str, ports))]
            poll_cmd += [str(args.units), str(args.conns), str(args.warmup), str(args.duration)]
            poller = subprocess.Popen(poll_cmd, stdout=subprocess.PIPE, text=True)
            time.sleep(args.warmup)
            cpu0, wall0 = _cpu_s(twin.pid), time.monotonic()
            out_text, _ = poller.communicate(timeout=args.duration + 60)
            cpu = (_cpu_s(twin.pid) - cpu0) / (time.monotonic() - wall0)
            mem = _proc_status(twin.pid)
        finally:
            twin.send_signal(signal.SIGTERM)
            try:
                twin.wait(timeout=30)
            except subprocess.TimeoutExpired:
                twin.kill()
    out = json.loads(out_text)
    lat_ms = [x * 1000 for x in out["latency_s"]]
    meters = args.ports * args.units
    p50, p99, p999 = (_pct(lat_ms, q) for q in (0.5, 0.99, 0.999))
    rss_mb = mem["VmHWM"] / 1024
    print(
        f"{meters} meters ({args.ports} ports x {args.units} units), each polled once a second "
        f"for {args.duration:.0f} s over {args.ports * args.conns} connections "
        f"(FC03, 40 registers); twin startup {startup_s:.1f} s"
    )
    print(
        f"requests {len(lat_ms)} ({len(lat_ms) / args.duration:.0f}/s) errors {len(out['errors'])} "
        f"late sends {len(out['late_s'])}"
    )
    print(
        f"latency ms: p50 {p50:.2f}  p99 {p99:.2f}  p99.9 {p999:.2f}  max {max(lat_ms):.2f}  "
        f"(target p99 <= {args.max_p99_ms})"
    )
    print(
        f"twin RSS peak {rss_mb:.0f} MB (now {mem['VmRSS'] / 1024:.0f} MB, target <= "
        f"{args.max_rss_mb:.0f}; all processes); CPU {cpu * 100:.0f} % of one core"
    )
    expected = meters * args.duration * 0.98
    ok = p99 <= args.max_p99_ms and rss_mb <= args.max_rss_mb and not out["errors"]
    return 0 if ok and len(lat_ms) >= expected else 1


def stepping_main(argv: list[str]) -> None:
    """``--stepping N [PROFILE]``: CPU per meter per 1 s step of N meters, no I/O.

    An in-process twin on the manual clock (TCP ports bound but not polled) steps its
    fleet five times by 1 s, then five times more answering one FC03 read (40
    registers) from every meter's endpoint after each step, in process (what polling
    every meter once a second costs on top, sockets and the event loop aside: the
    image rebuilt after the step, the request decoded and answered); CPU time, not
    wall time, so a loaded machine barely moves the figure.

    ``--store``: a state dir too, the meters deferred as under a ticking clock, and
    after each step (five times) the fleet committed to the store (one slice: every
    meter; the commit thread's CPU counts) and published before every meter is read
    once: what a meter-second costs a twin with a store, event loop and sockets aside.
    """
    from twin.core import MeterModel
    from twin.runtime import Twin, TwinConfig
    from twin.runtime.fleet import FleetSpec, MeterSpec

    store = "--store" in argv
    argv = [a for a in argv if a != "--store"]
    n = int(argv[0])
    profile = argv[1] if len(argv) > 1 else "default"
    model = MeterModel.parse("MMD-200A")
    ports = free_ports(-(-n // 200))
    meters = tuple(
        MeterSpec(
            unit=1 + i % 200, port=ports[i // 200], model=model, profile=profile,
            serial=f"MM{i:08d}",
        )
        for i in range(n)
    )  # fmt: skip

    async def run_store() -> None:
        from twin.runtime.committing import StepCommitter

        with tempfile.TemporaryDirectory(prefix="mm-stepping-") as tmp:
            cfg = TwinConfig(fleet=FleetSpec(meters), speed=None, state_dir=Path(tmp) / "s")
            async with Twin(cfg) as twin:
                assert twin.checkpointer is not None
                tick_s = n / 4000  # a slice of every meter (committing.COMMIT_ROWS_PER_S)
                committer = StepCommitter(
                    twin.checkpointer, twin.meters, tick_s, lambda: twin.meter_time_s
                )
                for m in twin.meters:
                    m.deferred = True
                twin.step(5.0)  # past the boot screen
                await committer.commit_and_publish()
                cpus = []
                for _ in range(5):
                    cpu = time.process_time()
                    twin.step(1.0)
                    await committer.commit_and_publish()
                    for m in twin.meters:
                        m.endpoint.respond(b"\x03\x00\x00\x00\x28")
                    cpus.append((time.process_time() - cpu) / n * 1e6)
                print(
                    f"{n} meters on {profile} with a store: a 1 s step, commit, publish and "
                    f"every meter read once: {' '.join(f'{c:.1f}' for c in cpus)} us CPU "
                    "per meter (5 steps)"
                )

    async def run() -> None:
        if store:
            await run_store()
            return
        async with Twin(TwinConfig(fleet=FleetSpec(meters), speed=None)) as twin:
            twin.step(5.0)  # past the boot screen
            for read in (False, True):
                wall, cpu = time.perf_counter(), time.process_time()
                for _ in range(5):
                    twin.step(1.0)
                    if read:  # a poll of every meter (FC03, 40 registers at 0), no sockets
                        for m in twin.meters:
                            m.endpoint.respond(b"\x03\x00\x00\x00\x28")
                wall, cpu = (time.perf_counter() - wall) / 5, (time.process_time() - cpu) / 5
                what = "and every meter read once" if read else "(no reads)"
                print(
                    f"{n} meters on {profile}: one 1 s step of the fleet {what} "
                    f"{cpu * 1e3:.0f} ms CPU ({wall * 1e3:.0f} ms wall) = "
                    f"{cpu / n * 1e6:.1f} us CPU per meter"
                )

    asyncio.run(run())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--poller":
        poller_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--stepping":
        stepping_main(sys.argv[2:])
    else:
        sys.exit(main())
