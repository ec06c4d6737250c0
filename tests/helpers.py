"""Shared test helpers (imported by tests; conftest.py only holds fixtures).

``TwinProcess`` is a ``python -m twin run`` subprocess; ``rtu_frame`` appends the
Modbus RTU CRC and ``rtu_reply`` collects an answer on a pty until the line goes quiet.
``next_reading`` and ``until`` wait for what a device or a background task does, up to
``SETTLE_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from devices import PulseReading, PulseSource

REPO = Path(__file__).resolve().parents[1]


def find_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TwinProcess:
    proc: subprocess.Popen[str]
    port: int
    first_line: str
    lines: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> tuple[int, str, str]:
        """Signal the twin and wait; returns (exit code, rest of stdout, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        out, err = self.proc.communicate(timeout=timeout_s)
        return self.proc.returncode, out, err


def run_args(args: tuple[str, ...], port: int) -> list[str]:
    argv = [sys.executable, "-m", "twin", "run", *args]
    if not {"--port", "--no-tcp", "--fleet"} & set(args):  # a fleet file has its own ports
        argv += ["--port", str(port)]
    if "--state-dir" not in args and "--no-state" not in args:
        argv.append("--no-state")
    return argv


def wait_for_line(proc: subprocess.Popen[str], what: str, timeout_s: float = 15.0) -> str:
    """Read stdout lines until one contains ``what``; fails with stderr on exit/timeout."""
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if what in line:
            return line
        if not line and proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"twin exited {proc.returncode} before {what!r}: {err}")
    proc.kill()
    raise AssertionError(f"no {what!r} line within {timeout_s} s")


def rtu_frame(frame: bytes) -> bytes:
    """``frame`` (address, PDU) with its Modbus RTU CRC appended."""
    # Imported here: most tests never touch RTU, and pymodbus is slow to import.
    from pymodbus.framer.rtu import FramerRTU

    return frame + FramerRTU.compute_CRC(frame).to_bytes(2, "big")


async def rtu_reply(master: int, timeout_s: float = 1.0) -> bytes:
    """What arrives on ``master`` until 20 ms of quiet after the first byte, or timeout."""
    loop = asyncio.get_running_loop()
    data, deadline = b"", loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            data += os.read(master, 512)
        except BlockingIOError:
            if data:
                await asyncio.sleep(0.02)  # let the rest of the frame arrive
                try:
                    data += os.read(master, 512)
                except BlockingIOError:
                    return data
            await asyncio.sleep(0.01)
    return data


# ------------------------------------------------------------ waiting for devices

#: The longest a test waits for a reading or a condition. Generous, so that a loaded
#: machine is only slower, never failing; a passing test waits no longer than it must.
SETTLE_TIMEOUT_S = 30.0


async def next_reading(source: PulseSource, timeout_s: float = SETTLE_TIMEOUT_S) -> PulseReading:
    """The source's next reading, or a failure (TimeoutError) after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        return await source.read()


async def until(
    predicate: Callable[[], bool], what: str, timeout_s: float = SETTLE_TIMEOUT_S
) -> None:
    """Yield to the loop until ``predicate`` holds (a background task caught up)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.001)


# ------------------------------------------------------------ energy oracle

#: Datasheet: the meter runs from L1 or L2 at 102..138 V; below that on both lines it
#: is off and registers nothing. Stated here again on purpose: an oracle must not
#: share the implementation (or the constants) it checks.
ORACLE_SUPPLY_MIN_V = 102.0


@dataclass(frozen=True)
class ImpliedEnergy:
    """What a profile implies an ideal meter registers (sum_then_clamp)."""

    l1_wh: float  # signed: negative when the line exports
    l2_wh: float
    total_wh: float  # integral of max(P1 + P2, 0) while powered
    peak_w: float  # largest P1 + P2 while powered (0 if none above)


def element_power_w(block: Any) -> Any:
    """(2, n) real power per element of a SampleBlock, from complex phasors."""
    import numpy as np

    n = block.n
    theta = np.radians(np.array(block.line_angle_deg))[:, None]
    phi = np.arccos(np.clip(block.cos_phi, -1.0, 1.0)) * np.where(block.leading, -1.0, 1.0)
    v = block.voltage_v * np.exp(1j * theta)
    i_line = block.current_a * np.exp(1j * (theta - phi))  # current lags by phi
    lines = np.broadcast_to(np.array([[0], [1]]) if block.ct_line is None else block.ct_line,
                            (2, n))  # fmt: skip
    i_seen = np.take_along_axis(np.broadcast_to(i_line, (2, n)), lines, axis=0)
    if block.ct_reversed is not None:
        i_seen = np.where(block.ct_reversed, -i_seen, i_seen)
    return np.real(v * np.conj(i_seen))


def implied_energy(
    sampler: Any, dt_s: float, t0_s: float = 0.0, duration_s: float | None = None
) -> ImpliedEnergy:
    """Plain numpy integration of each element's Re(V · conj(I)) over the samples.

    Independent of the core: phasors in complex numbers (element k: its line's
    voltage at the service's angle, the current of the line its CT is on, negated
    when the CT is reversed), no starting current, no accuracy curve, no rounding to
    microjoules; only the supply threshold. Tests compare the core against it.
    """
    import numpy as np

    span_s = sampler.duration_s if duration_s is None else duration_s
    dt_us = round(dt_s * 1e6)
    total_n = round(span_s * 1e6) // dt_us
    chunk = max(1, 86_400_000_000 // dt_us)
    e1 = e2 = total = peak = 0.0
    for start in range(0, total_n, chunk):
        m = min(chunk, total_n - start)
        block = sampler.block(t0_s + start * dt_us / 1e6, dt_s, m)
        p = element_power_w(block)
        powered = block.voltage_v.max(axis=0) >= ORACLE_SUPPLY_MIN_V
        p = np.where(powered, p, 0.0)
        net = p[0] + p[1]
        e1 += float(p[0].sum())
        e2 += float(p[1].sum())
        total += float(np.maximum(net, 0.0).sum())
        peak = max(peak, float(net.max()))
    hours = dt_us / 1e6 / 3600.0
    return ImpliedEnergy(e1 * hours, e2 * hours, total * hours, peak)


# ------------------------------------------------------------ the core's outputs


def events_by_kind(events: Any) -> tuple[list[str], dict[str, list[tuple[float, bool]]]]:
    """Pulse edges per output in time order, every other event (demand closes one per
    record) as sorted reprs: what two ways of stepping the same samples must agree on."""
    from twin.core import PulseEdges, expand_closes

    edges: dict[str, list[tuple[float, bool]]] = {}
    others = []
    for e in expand_closes(events):
        if isinstance(e, PulseEdges):
            pairs = zip(e.time_s.tolist(), e.closed.tolist(), strict=True)
            edges.setdefault(e.output, []).extend(pairs)
        else:
            others.append(repr(e))
    return sorted(others), edges


def block_pieces(block: Any, size: int) -> list[Any]:
    """``block`` (a SampleBlock with its CTs on their own lines, forward) cut into blocks
    of ``size`` samples, the last one shorter: the same samples in more calls."""
    from twin.core import SampleBlock

    n = block.n
    return [
        SampleBlock.build(
            min(size, n - a),
            block.dt_s,
            voltage_v=block.voltage_v[:, a : a + size],
            current_a=block.current_a[:, a : a + size],
            cos_phi=block.cos_phi[:, a : a + size],
            leading=block.leading[:, a : a + size],
            frequency_hz=block.frequency_hz[a : a + size],
            temperature_c=block.temperature_c[a : a + size],
            line_angle_deg=block.line_angle_deg,
        )
        for a in range(0, n, size)
    ]


def accuracy_ratio(curve: Any, amps: Any, pf: Any) -> Any:
    """The documented accuracy curve of an ``ErrorCurve`` over whole arrays, written out
    independently of the core's chunked ``ErrorCurve.scale``."""
    import numpy as np

    clipped = np.clip(amps, curve.low_a, curve.high_a)
    pct = (
        curve.offset_pct
        + curve.slope_pct_per_decade * np.log10(clipped / curve.reference_a)
        + curve.pf_pct_at_half * (1.0 - np.clip(np.abs(pf), 0.5, 1.0)) * 2.0
        + curve.calibration_pct
    )
    return 1.0 + pct / 100.0


# ------------------------------------------------------------ the HIL suite


def run_hil_suite(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], Any]:
    """``python -m pytest hil_tests ARGS`` from the repo; the result and its JUnit XML root."""
    import xml.etree.ElementTree as ET

    junit = tmp_path / "hil.xml"
    cmd = [sys.executable, "-m", "pytest", "hil_tests", "-q", "-p", "no:cacheprovider"]
    cmd += ["--junitxml", str(junit), *args]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    return result, ET.parse(junit).getroot()


def hil_outcomes(root: Any) -> dict[str, tuple[str, str]]:
    """Each test case's outcome (passed, failure, error, skipped) and message."""
    out = {}
    for case in root.iter("testcase"):
        name = case.get("name", "")
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        message = next((c.get("message", "") for c in case if c.tag in kinds), "")
        out[name] = (kinds[0] if kinds else "passed", message)
    return out


# -- MQTT: a real Mosquitto on a free loopback port, and a subscriber that records ---------


@dataclass
class Broker:
    """A ``mosquitto`` process on 127.0.0.1:``port``; :meth:`kill` and :meth:`start` again
    keep the port, so clients see the same broker go away and come back."""

    conf: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self.proc = subprocess.Popen(
            ["mosquitto", "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                _, err_bytes = self.proc.communicate()
                err = err_bytes.decode() if err_bytes else ""
                raise AssertionError(f"mosquitto exited {self.proc.returncode}: {err}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            time.sleep(0.02)
        raise AssertionError(f"mosquitto did not listen on {self.port} within {timeout_s} s")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


def mosquitto_conf(
    path: Path,
    port: int,
    *,
    tls: tuple[Path, Path, Path] | None = None,
    require_client_cert: bool = False,
) -> Path:
    """A broker config: loopback, anonymous, no persistence; ``tls``: (ca, cert, key)."""
    lines = [f"listener {port} 127.0.0.1", "allow_anonymous true", "persistence false"]
    if os.geteuid() == 0:  # as root mosquitto drops to its own user, who cannot read tmp_path
        lines.append("user root")
    if tls is not None:
        ca, cert, key = tls
        lines += [f"cafile {ca}", f"certfile {cert}", f"keyfile {key}"]
        if require_client_cert:
            lines.append("require_certificate true")
    lines += ["log_dest stderr", "log_type error"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Received:
    topic: str
    payload: bytes
    retain: bool
    correlation_data: bytes | None = None

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    """An MQTT 5 client recording every message of ``topics`` in ``messages``.

    ``async with Subscriber(port, "minimeter/#") as sub: await sub.wait_for(pred)``.
    """

    def __init__(self, port: int, *topics: str, tls_context: Any = None) -> None:
        import aiomqtt

        self._aiomqtt = aiomqtt
        self.client = aiomqtt.Client(
            "127.0.0.1",
            port,
            protocol=aiomqtt.ProtocolVersion.V5,
            tls_context=tls_context,
            tls_insecure=None,
        )
        self.topics = topics
        self.messages: list[Received] = []
        self._task: asyncio.Task[None] | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Subscriber:
        await self.client.__aenter__()
        for topic in self.topics:
            await self.client.subscribe(topic, qos=1)
        self._task = asyncio.create_task(self._record())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self.client.__aexit__(None, None, None)

    async def _record(self) -> None:
        async for m in self.client.messages:
            props = m.properties
            payload = m.payload if isinstance(m.payload, bytes) else str(m.payload).encode()
            corr = getattr(props, "CorrelationData", None) if props is not None else None
            self.messages.append(Received(str(m.topic), payload, bool(m.retain), corr))
            self._arrived.set()

    async def wait_for(
        self, predicate: Callable[[Received], bool], timeout_s: float = 5.0, *, after: int = 0
    ) -> Received:
        """The first message (from index ``after``) matching ``predicate``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        seen = after
        while True:
            for m in self.messages[seen:]:
                if predicate(m):
                    return m
            seen = max(seen, len(self.messages))
            remaining = deadline - loop.time()
            if remaining <= 0:
                got = sorted({m.topic for m in self.messages})
                raise AssertionError(f"no matching message within {timeout_s} s; topics: {got}")
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)

    async def publish(
        self,
        topic: str,
        payload: bytes | str = b"",
        *,
        retain: bool = False,
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
    ) -> None:
        props = None
        if response_topic is not None or correlation_data is not None:
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)
            if response_topic is not None:
                props.ResponseTopic = response_topic
            if correlation_data is not None:
                props.CorrelationData = correlation_data
        await self.client.publish(topic, payload, qos=1, retain=retain, properties=props)


def session_processes(sid: int) -> list[int]:
    """The processes of session ``sid`` still there, zombies included (Linux: /proc);
    a command started with ``start_new_session=True`` leads the session of its pid."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(fields[3]) == sid:
                pids.append(int(entry.name))
    return pids


def sigint_default() -> None:
    """``preexec_fn`` of a command a test interrupts: SIGINT handled as from a terminal,
    whatever this process inherited (a test run started in the background ignores it,
    and a child would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
