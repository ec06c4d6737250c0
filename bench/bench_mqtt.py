"""1,000 meters publishing over MQTT every 5 s while each is polled over Modbus at 1 Hz.

Starts a Mosquitto on a free loopback port, writes the fleet file of bench_fleet.py
(``--ports`` ports × ``--units`` unit ids, default 5 × 200 = 1,000 meters), starts
``minimeter run --fleet FILE --state-dir TMP --mqtt mqtt://127.0.0.1:PORT
--mqtt-interval 5`` (Home Assistant discovery on: ~23,000 retained configs at connect)
and, after ``--warmup`` seconds, for ``--duration`` seconds at once:

- bench_fleet.py's poller process: every meter read once a second (FC03, 40 registers
  of block A) on an open-loop schedule, send-to-answer latency per request;
- a subscriber process on ``minimeter/#``: messages per second, and per state message
  the broker-side lag, receive time minus the payload's ``unix_time_s`` (the twin's
  wall clock just before it published; same host, same clock), and per meter the gap
  between two of its states (the spread schedule keeps it at the interval).

    .venv/bin/python bench/bench_mqtt.py [--ports 5] [--units 200] [--duration 30]

Exits 1 if the Modbus p99 > ``--max-p99-ms`` (20), on any Modbus error, or if fewer
state messages than meters × duration / interval × 0.95 arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fleet  # the poller and fleet helpers: one harness, not two

REPO = bench_fleet.REPO


async def _subscribe(port: int, warmup_s: float, duration_s: float) -> dict[str, object]:
    import aiomqtt

    lags: list[float] = []
    gaps: list[float] = []
    last: dict[str, float] = {}
    counts = {"messages": 0, "states": 0, "events": 0}
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup_s
    end = start + duration_s
    async with aiomqtt.Client("127.0.0.1", port, protocol=aiomqtt.ProtocolVersion.V5) as c:
        await c.subscribe("minimeter/#")

        async def consume() -> None:
            async for m in c.messages:
                now = time.time()
                if loop.time() < start or m.retain:
                    continue
                counts["messages"] += 1
                topic = str(m.topic)
                if topic.endswith("/state"):
                    assert isinstance(m.payload, bytes)
                    body = json.loads(m.payload)
                    counts["states"] += 1
                    lags.append(now - body["unix_time_s"])
                    if topic in last:
                        gaps.append(now - last[topic])
                    last[topic] = now
                elif "/event/" in topic:
                    counts["events"] += 1

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consume(), end - loop.time())
    return {**counts, "lag_s": lags, "gap_s": gaps}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def subscriber_main(argv: list[str]) -> None:
    port, warmup_s, duration_s = int(argv[0]), float(argv[1]), float(argv[2])
    json.dump(asyncio.run(_subscribe(port, warmup_s, duration_s)), sys.stdout)


def _broker(port: int, tmp: Path, nodelay: bool) -> subprocess.Popen[bytes]:
    conf = tmp / "mosquitto.conf"
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if nodelay:  # mosquitto's own sends without Nagle's algorithm (off by default)
        lines.append("set_tcp_nodelay true")
    if os.geteuid() == 0:
        lines.append("user root")
    conf.write_text("\n".join(lines) + "\n")
    return subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ports", type=int, default=5)
    ap.add_argument("--units", type=int, default=200, help="meters per port (<= 247)")
    ap.add_argument("--conns", type=int, default=4, help="poller connections per port (4)")
    ap.add_argument("--duration", type=float, default=30.0, help="measured seconds (30)")
    ap.add_argument("--warmup", type=float, default=8.0, help="seconds before measuring (8)")
    ap.add_argument("--interval", type=float, default=5.0, help="--mqtt-interval (5)")
    ap.add_argument("--max-p99-ms", type=float, default=20.0)
    ap.add_argument(
        "--broker-nodelay", action="store_true", help="mosquitto with set_tcp_nodelay true"
    )
    args = ap.parse_args()
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed (make system-deps)")

    *ports, mqtt_port = bench_fleet.free_ports(args.ports + 1)
    with tempfile.TemporaryDirectory(prefix="mm-mqtt-") as tmp_name:
        tmp = Path(tmp_name)
        broker = _broker(mqtt_port, tmp, args.broker_nodelay)
        fleet = tmp / "fleet.yaml"
        lines = ["fleet: 1", "defaults: {profile: default}", "meters:"]
        lines += [f"  - {{unit: {u}, port: {p}}}" for p in ports for u in range(1, args.units + 1)]
        fleet.write_text("\n".join(lines) + "\n")
        cmd = [sys.executable, "-m", "twin", "run", "--fleet", str(fleet)]
        cmd += ["--state-dir", str(tmp / "state"), "--mqtt", f"mqtt://127.0.0.1:{mqtt_port}"]
        cmd += ["--mqtt-interval", str(args.interval)]
        time.sleep(0.5)  # the broker listens
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
            me = [sys.executable, __file__, "--subscriber", str(mqtt_port)]
            sub = subprocess.Popen(
                [*me, str(args.warmup), str(args.duration)], stdout=subprocess.PIPE, text=True
            )
            poll_cmd = [sys.executable, bench_fleet.__file__, "--poller"]
            poll_cmd += [",".join(map(str, ports)), str(args.units), str(args.conns)]
            poll_cmd += [str(args.warmup), str(args.duration)]
            poller = subprocess.Popen(poll_cmd, stdout=subprocess.PIPE, text=True)
            poll_text, _ = poller.communicate(timeout=args.duration + args.warmup + 60)
            sub_text, _ = sub.communicate(timeout=args.duration + args.warmup + 60)
        finally:
            twin.send_signal(signal.SIGTERM)
            try:
                twin.wait(timeout=30)
            except subprocess.TimeoutExpired:
                twin.kill()
            broker.terminate()
            broker.wait(timeout=10)
    polled, got = json.loads(poll_text), json.loads(sub_text)
    lat_ms = [x * 1000 for x in polled["latency_s"]]
    lag_ms = [x * 1000 for x in got["lag_s"]]
    meters = args.ports * args.units
    p50, p99, p999 = (pct(lat_ms, q) for q in (0.5, 0.99, 0.999))
    print(
        f"{meters} meters publishing every {args.interval:g} s (HA discovery on), each polled "
        f"once a second over Modbus, measured for {args.duration:.0f} s"
    )
    print(
        f"modbus: requests {len(lat_ms)} errors {len(polled['errors'])}  latency ms p50 "
        f"{p50:.2f} p99 {p99:.2f} p99.9 {p999:.2f} max {max(lat_ms):.2f} (target p99 <= "
        f"{args.max_p99_ms})"
    )
    print(
        f"mqtt: {got['messages'] / args.duration:.0f} messages/s ({got['states']} states, "
        f"{got['events']} events); broker-side lag ms p50 {pct(lag_ms, 0.5):.2f} p99 "
        f"{pct(lag_ms, 0.99):.2f} max {max(lag_ms):.2f}; gap between a meter's states s "
        f"p50 {pct(got['gap_s'], 0.5):.2f} p99 {pct(got['gap_s'], 0.99):.2f}"
    )
    expected_states = meters * args.duration / args.interval * 0.95
    ok = p99 <= args.max_p99_ms and not polled["errors"] and got["states"] >= expected_states
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--subscriber":
        subscriber_main(sys.argv[2:])
    else:
        sys.exit(main())
