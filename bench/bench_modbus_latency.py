"""Modbus TCP latency: the twin beside the libmodbus C server and the pymodbus server.

Builds ``../shared/bench`` (its Makefile, into a temporary directory so the shared
folder stays untouched), starts the three servers on free loopback ports in the same
run, and runs ``modbus_load`` (1 connection, FC03, 40 registers of block A at address
0, which the reference servers also serve) against each, ``--rounds`` times in turn
so machine noise hits all three alike. Prints p50/p99 per server (median over rounds)
and the ratio twin / libmodbus; exits 1 if that p50 ratio is above ``--max-ratio``.

    .venv/bin/python bench/bench_modbus_latency.py [--reads 20000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_BENCH = REPO.parent / "shared" / "bench"
_LINE = re.compile(
    r"requests (\d+) errors (\d+) wall_s ([\d.]+) req_per_s (\d+) p50_us (\d+) p99_us (\d+)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"server on port {port} did not listen within {timeout_s} s")


def build(shared: Path, out: Path) -> Path:
    """Copy the shared sources and build them with the shared Makefile, outside git."""
    for name in ("Makefile", "modbus_load.c", "libmodbus_ref_server.c", "pymodbus_ref_server.py"):
        shutil.copy(shared / name, out / name)
    subprocess.run(["make", "-s", "-C", str(out)], check=True)
    return out


def load(binary: Path, port: int, reads: int) -> dict[str, float]:
    cmd = [str(binary), "-p", str(port), "-c", "1", "-n", str(reads), "-r", "40", "-a", "0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    m = _LINE.search(out.stdout)
    if m is None or int(m.group(2)):
        raise SystemExit(f"modbus_load failed on port {port}: {out.stdout}{out.stderr}")
    return {"req_s": float(m.group(4)), "p50_us": float(m.group(5)), "p99_us": float(m.group(6))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reads", type=int, default=20000, help="requests per run (20000)")
    ap.add_argument("--rounds", type=int, default=3, help="runs per server, interleaved (3)")
    ap.add_argument("--max-ratio", type=float, default=1.5, help="p50 twin/libmodbus bound")
    args = ap.parse_args()

    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="mm-bench-") as tmp:
        bindir = build(SHARED_BENCH, Path(tmp))
        ports = {"libmodbus": free_port(), "pymodbus": free_port(), "twin": free_port()}
        cmds = {
            "libmodbus": [str(bindir / "libmodbus_ref_server"), str(ports["libmodbus"])],
            "pymodbus": [sys.executable, str(bindir / "pymodbus_ref_server.py"),
                         str(ports["pymodbus"])],
            # A live meter: the default profile stepping at real time, 10 ticks/s.
            "twin": [sys.executable, "-m", "twin", "run", "--no-state",
                     "--port", str(ports["twin"])],
        }  # fmt: skip
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
            results: dict[str, list[dict[str, float]]] = {name: [] for name in cmds}
            for name in cmds:  # warm up: connections, caches, the JIT-less interpreter
                load(bindir / "modbus_load", ports[name], 2000)
            for _ in range(args.rounds):
                for name in cmds:
                    results[name].append(load(bindir / "modbus_load", ports[name], args.reads))
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()

    print(f"modbus_load -c 1 -n {args.reads} -r 40 -a 0 (FC03), median of {args.rounds} rounds")
    print(f"{'server':<10} {'p50_us':>8} {'p99_us':>8} {'req/s':>8}")
    med: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        med[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        m = med[name]
        print(f"{name:<10} {m['p50_us']:>8.0f} {m['p99_us']:>8.0f} {m['req_s']:>8.0f}")
    ratio = med["twin"]["p50_us"] / med["libmodbus"]["p50_us"]
    py_ratio = med["pymodbus"]["p50_us"] / med["libmodbus"]["p50_us"]
    print(f"p50 ratio twin/libmodbus {ratio:.2f} (target <= {args.max_ratio}); "
          f"pymodbus/libmodbus {py_ratio:.2f}")  # fmt: skip
    return 0 if ratio <= args.max_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
