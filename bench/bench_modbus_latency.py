"""Modbus TCP latency: the twin beside the libmodbus C server and the pymodbus server.

Builds ``../shared/bench`` (its Makefile, into a temporary directory so the shared
folder stays untouched), starts the three servers on free loopback ports in the same
run, and runs ``modbus_load`` (1 connection, FC03, 40 registers of block A at address
0, which the reference servers also serve) against each, ``--rounds`` times in turn
so machine noise hits all three alike. Prints p50/p99 and CPU µs per request per
server (median over rounds) and the ratio twin / libmodbus; exits 1 if that p50
ratio is above ``--max-ratio``.

    .venv/bin/python bench/bench_modbus_latency.py [--reads 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys

from modbus_refs import reference_servers


def load_options(reads: int) -> list[str]:
    return ["-c", "1", "-n", str(reads), "-r", "40", "-a", "0"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=20000, help="requests per run (20000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per server, interleaved (3)")
    ap.add_argument("--max-ratio", type=float, default=1.1, help="p50 twin/libmodbus bound")
    args = ap.parse_args()

    with reference_servers() as servers:
        results: dict[str, list[dict[str, float]]] = {name: [] for name in servers.ports}
        for name in servers.ports:  # warm up: connections, caches, the JIT-less interpreter
            servers.load(name, load_options(2000), 600)
        for _ in range(args.rounds):
            for name in servers.ports:
                results[name].append(servers.load(name, load_options(args.reads), 600))

    print(f"modbus_load -c 1 -n {args.reads} -r 40 -a 0 (FC03), median of {args.rounds} rounds")
    print(f"{'server':<10} {'p50_us':>8} {'p99_us':>8} {'req/s':>8} {'cpu_us':>7}")
    med: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = med[name]
        print(
            f"{name:<10} {m['p50_us']:>8.0f} {m['p99_us']:>8.0f} {m['req_s']:>8.0f} "
            f"{m['cpu_us']:>7.1f}"
        )
    ratio = med["twin"]["p50_us"] / med["libmodbus"]["p50_us"]
    py_ratio = med["pymodbus"]["p50_us"] / med["libmodbus"]["p50_us"]
    print(f"p50 ratio twin/libmodbus {ratio:.2f} (target <= {args.max_ratio}); "
          f"pymodbus/libmodbus {py_ratio:.2f}")  # fmt: skip
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
