"""Modbus TCP throughput: the twin beside the libmodbus C server and the pymodbus server.

Builds ``../shared/bench`` with its Makefile in a temporary directory (the shared
folder is not written), starts the libmodbus reference server, the pymodbus
reference server and the twin (``minimeter run --no-state``: a LIVE meter on the
default profile, stepping 10 times a second) on free loopback ports in the same
run, and runs ``modbus_load -c 16 -n N -r 40 -a 0 -f 3`` (16 connections, each N
sequential FC03 reads of 40 registers of block A) against each, ``--rounds`` times
interleaved so machine noise hits all three alike. Prints req/s and p50/p99 per
server (median over rounds), each server's CPU time per request (user + system of
its process: the figure the load of others hardly moves) and the ratios; exits 1 if
the twin is below ``--min-libmodbus`` × libmodbus or ``--min-pymodbus`` × pymodbus.

    .venv/bin/python bench/bench_modbus_throughput.py [--reads 5000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from modbus_refs import reference_servers


def load_options(conns: int, reads: int) -> list[str]:
    return ["-c", str(conns), "-n", str(reads), "-r", "40", "-a", "0", "-f", "3"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--conns", type=int, default=16, help="connections (16)")
    ap.add_argument("--reads", type=int, default=5000, help="requests per connection (5000)")
    ap.add_argument("--rounds", type=int, default=5, help="runs per server, interleaved (5)")
    ap.add_argument("--min-libmodbus", type=float, default=1.0, help="twin/libmodbus bound")
    ap.add_argument("--min-pymodbus", type=float, default=3.0, help="twin/pymodbus bound")
    args = ap.parse_args()

    with reference_servers() as servers:
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers.ports}
        for name in servers.ports:  # warm up: connections, caches
            servers.load(name, load_options(args.conns, 200), 900)
        for _ in range(args.rounds):
            for name in servers.ports:
                results[name].append(servers.load(name, load_options(args.conns, args.reads), 900))

    print(
        f"modbus_load -c {args.conns} -n {args.reads} -r 40 -a 0 -f 3, "
        f"median of {args.rounds} interleaved rounds"
    )
    print(f"{'server':<10} {'req/s':>8} {'p50_us':>8} {'p99_us':>8} {'cpu_us':>7}   rounds req/s")
    med: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = med[name]
        each = " ".join(f"{r['req_s']:.0f}" for r in runs)
        print(
            f"{name:<10} {m['req_s']:>8.0f} {m['p50_us']:>8.0f} {m['p99_us']:>8.0f} "
            f"{m['cpu_us']:>7.1f}   {each}"
        )
    vs_c = med["twin"]["req_s"] / med["libmodbus"]["req_s"]
    vs_py = med["twin"]["req_s"] / med["pymodbus"]["req_s"]
    print(f"twin/libmodbus {vs_c:.2f} (target >= {args.min_libmodbus}); "
          f"twin/pymodbus {vs_py:.2f} (target >= {args.min_pymodbus})")  # fmt: skip
    return 0 if vs_c >= args.min_libmodbus and vs_py >= args.min_pymodbus else 1


if __name__ == "__main__":
    sys.exit(main())
