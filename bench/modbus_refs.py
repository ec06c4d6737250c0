"""The Modbus TCP reference servers and the twin, side by side, for the Modbus benchmarks.

Both ``bench_modbus_latency.py`` and ``bench_modbus_throughput.py`` measure the twin
beside the libmodbus C reference server and the plain pymodbus reference server of
``../shared/bench`` in the same run (this machine is shared and noisy, so only the
ratios matter). ``reference_servers()`` copies that folder's sources into a temporary
directory and builds them there with its Makefile (the shared folder is never
written), starts the three servers on free loopback ports, waits until each listens,
and stops them all (SIGTERM, then SIGKILL after 10 s) when the block ends, whatever
happened inside it. ``Servers.load`` runs the built ``modbus_load`` client against one
of them and parses its summary line; a failed or erroring run exits the benchmark.
It also reports the CPU time the server process spent per request (user + system,
from ``/proc``): unlike req/s, that figure hardly moves with the load of others.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# ../shared/bench beside the repository (or beside its worktrees folder); MM_SHARED_BENCH wins.
SHARED_BENCH = Path(
    os.environ.get("MM_SHARED_BENCH")
    or next(
        (p for p in (REPO.parent / "shared" / "bench", REPO.parents[1] / "shared" / "bench")
         if p.is_dir()),
        REPO.parent / "shared" / "bench",
    )
)  # fmt: skip
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


@dataclass(frozen=True)
class Servers:
    """The running servers: their loopback ports by name, and the built client."""

    bindir: Path
    ports: dict[str, int]
    pids: dict[str, int]

    def load(self, name: str, options: list[str], timeout_s: float) -> dict[str, float]:
        """Run ``modbus_load -p PORT OPTIONS`` against server ``name``: req/s, p50, p99
        and the server's CPU µs per request."""
        port = self.ports[name]
        cmd = [str(self.bindir / "modbus_load"), "-p", str(port), *options]
        cpu_before_s = cpu_s(self.pids[name])
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        cpu_used_s = cpu_s(self.pids[name]) - cpu_before_s
        m = _LINE.search(out.stdout)
        if m is None or int(m.group(2)):
            raise SystemExit(f"modbus_load failed on port {port}: {out.stdout}{out.stderr}")
        return {
            "req_s": float(m.group(4)),
            "p50_us": float(m.group(5)),
            "p99_us": float(m.group(6)),
            "cpu_us": 1e6 * cpu_used_s / int(m.group(1)),
        }


def cpu_s(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def reference_servers() -> Iterator[Servers]:
    """Build the references, start libmodbus, pymodbus and the twin; stop them on exit."""
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
            yield Servers(bindir, ports, {name: p.pid for name, p in zip(cmds, procs, strict=True)})
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            for p in procs:
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
