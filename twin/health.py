"""The twin's health probe: ``python -m twin.health``, a real Modbus TCP request.

Theory of operation
-------------------
Healthy means the Modbus TCP serving loop answers: the probe connects, sends FC03
(read one holding register at address 0) to ``--unit`` (1) and accepts a normal reply
or a Modbus exception reply (an unknown unit's 0x0B too) with its own transaction id;
a refused connection, a timeout, a closed socket or a malformed answer is unhealthy.
Exit 0 healthy, 1 not, with one line saying which port and why.

This one module is every probe there is: the image's ``HEALTHCHECK`` (the port from
``MINIMETER_PORT``, default 5020) and the Kubernetes readiness and liveness probes
(``deploy/k8s``), so what Docker and Kubernetes call healthy is the same thing.

Which ports: ``--port P`` (repeatable) or ``MINIMETER_PORT``; or ``--listening``:
every TCP port listening in this network namespace (``/proc/net/tcp``, ``tcp6``).
A shard pod serves ports that depend on its ordinal and the fleet file; a pod has
its own network namespace, so its listening ports are exactly the twin's, and the
probe needs neither the fleet file (reading ten thousand meters costs ~0.5 s of CPU,
too much for a probe every few seconds) nor the shard plan. No listening port
at all (still starting) is unhealthy. It imports nothing but the standard library:
a probe must be cheap (~30 ms).
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PORT = 5020
PORT_ENV = "MINIMETER_PORT"
PROC_NET = Path("/proc/net")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
_TID = 0x4D4D  # "MM": the probe's transaction id


def modbus_request(unit: int) -> bytes:
    """MBAP + FC03 read of one register at address 0."""
    return struct.pack(">HHHBBHH", _TID, 0, 6, unit, 0x03, 0, 1)


def check_reply(reply: bytes, unit: int) -> str | None:
    """None when ``reply`` is a well-formed FC03 answer or exception to our request."""
    if len(reply) < 9:
        return f"short answer ({len(reply)} bytes)"
    tid, proto, length, r_unit, function = struct.unpack(">HHHBB", reply[:8])
    if (tid, proto, r_unit) != (_TID, 0, unit):
        return f"answer to another request (transaction {tid}, protocol {proto}, unit {r_unit})"
    if function == 0x83:
        return None  # an exception reply: the serving loop is alive and decided
    if function != 0x03 or length != 5 or reply[8] != 2:
        return f"malformed FC03 answer {reply[:16].hex()}"
    return None


def probe(host: str, port: int, unit: int = 1, timeout_s: float = 3.0) -> str | None:
    """None when healthy, else why not (one line)."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as s:
            s.settimeout(timeout_s)
            s.sendall(modbus_request(unit))
            reply = b""
            while len(reply) < 9 or len(reply) < 6 + reply[5]:
                chunk = s.recv(260)
                if not chunk:
                    return f"connection closed after {len(reply)} bytes"
                reply += chunk
    except TimeoutError:
        return f"no answer within {timeout_s:g} s"
    except OSError as exc:
        return exc.strerror or str(exc)
    return check_reply(reply, unit)


def listening_ports(proc_net: Path = PROC_NET) -> list[int]:
    """TCP ports in LISTEN state in this network namespace (IPv4 and IPv6)."""
    ports: set[int] = set()
    for name in ("tcp", "tcp6"):
        try:
            lines = (proc_net / name).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == _LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return sorted(ports)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m twin.health", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1", help="where the twin listens (127.0.0.1)")
    p.add_argument("--port", type=int, action="append", help=f"port to probe (${PORT_ENV})")
    p.add_argument("--listening", action="store_true", help="probe every listening TCP port")
    p.add_argument("--unit", type=int, default=1, help="unit id asked (1)")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds per port (3)")
    return p


def main(argv: Sequence[str] | None = None, proc_net: Path = PROC_NET) -> int:
    args = build_parser().parse_args(argv)
    if args.listening and args.port:
        print("health: --listening and --port exclude each other", file=sys.stderr)
        return 1
    if not 0 <= args.unit <= 255:
        print(f"health: --unit {args.unit}: expected 0..255", file=sys.stderr)
        return 1
    if args.listening:
        ports = listening_ports(proc_net)
        if not ports:
            print("unhealthy: no TCP port is listening yet", file=sys.stderr)
            return 1
    else:
        raw = os.environ.get(PORT_ENV, str(DEFAULT_PORT))
        if args.port is None and not raw.isdigit():
            print(f"health: {PORT_ENV}={raw!r}: expected a TCP port", file=sys.stderr)
            return 1
        ports = args.port or [int(raw)]
    for port in ports:
        why = probe(args.host, port, args.unit, args.timeout)
        if why is not None:
            print(f"unhealthy: {args.host}:{port} unit {args.unit}: {why}", file=sys.stderr)
            return 1
    print(f"healthy: {len(ports)} port(s) answer Modbus ({','.join(map(str, ports))})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
