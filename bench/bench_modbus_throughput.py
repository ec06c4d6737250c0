"""Modbus TCP throughput: the twin beside the libmodbus C server and the pymodbus server.

Builds ``../shared/bench`` with its Makefile in a temporary directory (the shared
folder is not written), starts the libmodbus reference server, the pymodbus
reference server and the twin (``minimeter run --no-state``: a LIVE meter on the
default profile, stepping 10 times a second) on free loopback ports in the same
run, and runs ``modbus_load -c 16 -n N -r 40 -a 0 -f 3`` (16 connections, each N
sequential FC03 reads of 40 registers of block A) against each, ``--rounds`` times
interleaved so machine noise hits all three alike. Prints req/s and p50/p99 per
server (median over rounds) and the ratios; exits 1 if the twin is below
``--min-libmodbus`` × libmodbus or ``--min-pymodbus`` × pymodbus.

    .venv/bin/python bench/bench_modbus_throughput.py [--reads 5000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_modbus_latency import _LINE, REPO, SHARED_BENCH, build, free_port, wait_port


def load(binary: Path, port: int, conns: int, reads: int) -> dict[str, float]:
    cmd = [str(binary), "-p", str(port), "-c", str(conns), "-n", str(reads)]
    cmd += ["-r", "40", "-a", "0", "-f", "3"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    m = _LINE.search(out.stdout)
    if m is None or int(m.group(2)):
        raise SystemExit(f"modbus_load failed on port {port}: {out.stdout}{out.stderr}")
    return {"req_s": float(m.group(4)), "p50_us": float(m.group(5)), "p99_us": float(m.group(6))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=16, help="connections (16)")
    ap.add_argument("--reads", type=int, default=5000, help="requests per connection (5000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per server, interleaved (3)")
    ap.add_argument("--min-libmodbus", type=float, default=0.8, help="twin/libmodbus bound")
    ap.add_argument("--min-pymodbus", type=float, default=3.0, help="twin/pymodbus bound")
    args = ap.parse_args()

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        bindir = build(SHARED_BENCH, Path(tmp))
        ports = {"libmodbus": free_port(), "pymodbus": free_port(), "twin": free_port()}
        cmds = {
            "libmodbus": [str(bindir / "libmodbus_ref_server"), str(ports["libmodbus"])],
            "pymodbus": [sys.executable, str(bindir / "pymodbus_ref_server.py"),
                         str(ports["pymodbus"])],
            "twin": [sys.executable, "-m", "twin", "run", "--no-state",
                     "--port", str(ports["twin"])],
        }  # fmt: skip
        results: dict[str, list[dict[str, float]]] = {name: [] for name in cmds}
        try:
            for name, cmd in cmds.items():
                procs.append(
                    subprocess.Popen(
                        cmd,
                        cwd=REPO,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        env={**os.environ, "PYTHONUNBUFFERED": "1"},
                    )
                )
                wait_port(ports[name], procs[-1])
            for name in cmds:  # warm up: connections, caches
                load(bindir / "modbus_load", ports[name], args.conns, 200)
            for _ in range(args.rounds):
                for name in cmds:
                    results[name].append(
                        load(bindir / "modbus_load", ports[name], args.conns, args.reads)
                    )
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    print(
        f"modbus_load -c {args.conns} -n {args.reads} -r 40 -a 0 -f 3, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"{'server':<10} {'req/s':>8} {'p50_us':>8} {'p99_us':>8}   rounds req/s")
    med: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = med[name]
        each = " ".join(f"{r['req_s']:.0f}" for r in runs)
        print(f"{name:<10} {m['req_s']:>8.0f} {m['p50_us']:>8.0f} {m['p99_us']:>8.0f}   {each}")
    vs_c = med["twin"]["req_s"] / med["libmodbus"]["req_s"]
    vs_py = med["twin"]["req_s"] / med["pymodbus"]["req_s"]
    print(f"twin/libmodbus {vs_c:.2f} (target >= {args.min_libmodbus}); "
          f"twin/pymodbus {vs_py:.2f} (target >= {args.min_pymodbus})")  # fmt: skip
    return 0 if vs_c >= args.min_libmodbus and vs_py >= args.min_pymodbus else 1


if __name__ == "__main__":
    sys.exit(main())
