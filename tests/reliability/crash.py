"""The crash rig: a twin killed with SIGKILL over and over, with MQTT and a mirror live.

Theory of operation
-------------------
Around one state dir the rig runs:

- the twin, ``minimeter run`` at ``SPEED`` x on a constant load (``LOAD_W``), its
  store checkpointed every ``CHECKPOINT_S`` wall seconds, publishing to a real
  Mosquitto (``--mqtt``) and driving its 10 Wh pulse output onto coil 0 of a counter
  module stand-in (``--pulse-out modbus-coil://``);
- the module: a pymodbus server (:class:`tests.devices.fakes.CounterModule`) whose
  counter channel 0 counts the coil's rising edges, as an ADAM-6051 wired to its own
  relay output would: the ground truth of pulses that physically happened;
- the mirror, ``minimeter mirror --source adam6051://`` reading that counter, with
  its own state dir.

Each round starts the twin, polls its energy register at random for 0.2-1.6 s (it may
never go down within a run) and kills it with SIGKILL; one round in four also kills
the mirror at the start of the round and restarts it after the twin's kill, so the
pulses of that round happen while the mirror is dead. After each kill:

- the store is checked cold: ``PRAGMA integrity_check`` is ok;
- nothing a client saw goes back: the stored energy is at least the highest value read
  over Modbus and published on MQTT before the kill, and the first read after the
  restart is at least that too (the twin publishes a step only once it is committed);
- the energy lost is estimated against the clock: the twin steps its meter to
  ``SPEED`` x wall time at ``LOAD_W``, so the reads of the run give when its meter
  time began (the freshest read: the least behind), and the energy it should have
  registered by the moment of the kill, minus what the store kept, is the loss. That
  over-estimates the store's loss by the time since the last step (up to a tick) and
  any lag of the twin behind its clock; it must stay within one checkpoint interval
  and one tick at the load (``BOUND_WH``), and is reported against one step
  (``STEP_WH``, what a process crash may lose).

With MQTT, the broker publishes the twin's last will (``offline``) after each kill and
the restarted twin says ``online`` again. The mirror's energy never goes back across
its own kills. At the end the mirror's pulse count and energy must equal the module's
count exactly: no pulse lost, none counted twice, across all the twin's and mirror's
kills; and the module's pulses are never more than the twin's final energy (a pulse
goes out only once its energy is committed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sqlite3
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from tests.devices.fakes import CounterModule
from tests.helpers import find_free_port
from tests.reliability.support import ENERGY_ADDRESS, ENERGY_WORDS, Drained, minimeter
from twin.modbus.client import MeterClient
from twin.store import STORE_FILENAME, Store

SERIAL = "MM00000001"
SPEED = 60.0
TICK_S = 0.1
CHECKPOINT_S = 0.5
LOAD_W = 4800.0  # 2 x 120 V x 20 A at PF 1
UJ_PER_WH = 3_600_000_000
KH_WH = 10
WH_PER_WALL_S = LOAD_W * SPEED / 3600
STEP_WH = WH_PER_WALL_S * TICK_S  # one step of meter time at the load
BOUND_WH = WH_PER_WALL_S * (CHECKPOINT_S + TICK_S) + 1  # + 1 Wh of register resolution
MIRROR_KILL_EVERY = 4  # one round in this many kills the mirror as well
PULSES_ADDRESS = 77  # mirror_pulses: uint32 in 2 registers (the register map)

PROFILE = """\
schema: 1
name: crash-constant
description: Constant 4.8 kW on both lines, for the crash rig
segments:
  - kind: constant
    duration: 100d
    L1: {voltage: 120, current: 20, pf: 1.0}
    L2: {voltage: 120, current: 20, pf: 1.0}
"""


@dataclass
class Figures:
    kills: int = 0
    mirror_kills: int = 0
    lost_wh: list[float] = field(default_factory=list)
    restart_s: list[float] = field(default_factory=list)
    reads: int = 0
    mqtt_states: int = 0
    intact: int = 0  # stores found intact after a kill
    final_wh: int = 0
    module_pulses: int = 0
    mirror_pulses: int = 0
    mqtt_offline: int = 0

    def as_dict(self) -> dict[str, object]:
        lost_max = max(self.lost_wh, default=0.0)
        return {
            "test": "crash",
            "kills": self.kills,
            "mirror_kills": self.mirror_kills,
            "store_intact": self.intact,
            "backwards": 0,  # every comparison is asserted: a run that reports passed them
            "step_wh": round(STEP_WH, 1),
            "bound_wh": round(BOUND_WH, 1),
            "lost_wh_max": round(lost_max, 1),
            "lost_wh_mean": round(sum(self.lost_wh) / max(1, len(self.lost_wh)), 1),
            "lost_wh_p90": round(sorted(self.lost_wh)[int(0.9 * (len(self.lost_wh) - 1))], 1)
            if self.lost_wh
            else 0.0,
            "kills_over_a_step": sum(wh > STEP_WH + 1 for wh in self.lost_wh),
            "lost_meter_s_max": round(lost_max * 3600 / LOAD_W, 1),
            "restart_s_max": round(max(self.restart_s, default=0.0), 2),
            "restart_s_mean": round(sum(self.restart_s) / max(1, len(self.restart_s)), 2),
            "reads": self.reads,
            "mqtt_states": self.mqtt_states,
            "final_wh": self.final_wh,
            "module_pulses": self.module_pulses,
            "mirror_pulses": self.mirror_pulses,
            "mqtt_offline_wills": self.mqtt_offline,
        }


def lost_wh(
    restored_uj: int, reads: list[tuple[float, int]], killed_at: float, kept_uj: int
) -> float:
    """The energy the meter should have registered by ``killed_at`` minus what the store
    kept (see the module docstring). ``reads``: (answer time, Wh) of the run."""
    restored_wh = restored_uj / UJ_PER_WH
    # A read shows at most what the clock had asked for by its answer: the meter's time
    # began no later than the earliest of these.
    began = min(at - (wh - restored_wh) / WH_PER_WALL_S for at, wh in reads)
    return restored_wh + WH_PER_WALL_S * (killed_at - began) - kept_uj / UJ_PER_WH


@contextlib.asynccontextmanager
async def edge_counting(module: CounterModule) -> AsyncIterator[list[int]]:
    """Count the rising edges of coil 0 into counter channel 0 (ADAM-6051 layout);
    yields a one-item list holding the count."""
    count, seen, closed = [0], 0, False

    async def run() -> None:
        nonlocal seen, closed
        while True:
            writes = module.coil_writes[seen:]
            seen += len(writes)
            for coil, value in writes:
                if coil == 0:
                    count[0] += value and not closed
                    closed = value
            if writes:
                await module.set_counter(3, 0, count[0], low_word_first=True)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(run())
    try:
        yield count
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


class MqttWatch:
    """The twin's retained availability and state topics as a subscriber sees them."""

    def __init__(self, broker_port: int) -> None:
        self.broker_port = broker_port
        self.values: list[str] = []  # availability
        self.energies_wh: list[float] = []  # energy_delivered_wh of each state message
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def _run(self) -> None:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", port=self.broker_port) as client:
            for leaf in ("availability", "state"):
                await client.subscribe(f"minimeter/{SERIAL}/{leaf}", qos=1)
            self._ready.set()
            async for message in client.messages:
                payload = message.payload
                if not isinstance(payload, bytes):
                    continue
                if message.topic.value.endswith("/state"):
                    self.energies_wh.append(float(json.loads(payload)["energy_delivered_wh"]))
                else:
                    self.values.append(payload.decode())

    async def __aenter__(self) -> MqttWatch:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._ready.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def wait_for(self, value: str, after: int, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while value not in self.values[after:]:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {value!r} on availability; saw {self.values[after:]}")
            await asyncio.sleep(0.02)


def stored_energy_uj(state_dir: Path) -> int:
    """The checkpoint in the store, checked cold (integrity first)."""
    path = state_dir / STORE_FILENAME
    check = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        check.close()
    with Store(path, read_only=True) as view:
        nv = view.load(SERIAL)
    return 0 if nv is None else nv.energy_delivered_uj


async def served(port: int, address: int, words: int) -> int:
    async with MeterClient(port=port) as client:
        return await client.read_uint(address, words)


class CrashRig:
    """One run of the rig (see the module docstring); ``await rig.run(kills)``."""

    def __init__(
        self, tmp: Path, module: CounterModule, broker_port: int | None, seed: int
    ) -> None:
        self.tmp = tmp
        self.module = module
        self.broker_port = broker_port
        self.rng = random.Random(seed)
        self.state = tmp / "twin-state"
        self.mirror_state = tmp / "mirror-state"
        self.profile = tmp / "crash-constant.yaml"
        self.profile.write_text(PROFILE)
        self.port = find_free_port()
        self.mirror_port = find_free_port()
        self.figures = Figures()

    def twin_argv(self) -> list[str]:
        argv = minimeter(
            "run",
            "--profile",
            str(self.profile),
            "--port",
            str(self.port),
            "--state-dir",
            str(self.state),
            "--speed",
            str(SPEED),
            "--tick",
            str(TICK_S),
            "--checkpoint-interval",
            str(CHECKPOINT_S),
            "--pulse-out",
            f"modbus-coil://127.0.0.1:{self.module.port}?coil=0",
        )
        if self.broker_port is not None:
            argv += ["--mqtt", f"mqtt://127.0.0.1:{self.broker_port}", "--mqtt-interval", "0.2"]
        return argv

    def start_mirror(self) -> tuple[Drained, int]:
        mirror = Drained(
            minimeter(
                "mirror",
                "--source",
                f"adam6051://127.0.0.1:{self.module.port}?channel=0&kh={KH_WH}&poll=20ms",
                "--port",
                str(self.mirror_port),
                "--state-dir",
                str(self.mirror_state),
                "--status",
                "1",
            )
        )
        first = mirror.wait_line(lambda ln: "serving modbus tcp" in ln)
        restored = int(first.split("(")[1].split()[0])
        return mirror, restored

    async def run(self, kills: int) -> Figures:
        f = self.figures
        async with contextlib.AsyncExitStack() as stack:
            count = await stack.enter_async_context(edge_counting(self.module))
            watch = None
            if self.broker_port is not None:
                watch = await stack.enter_async_context(MqttWatch(self.broker_port))
            mirror, restored = await asyncio.to_thread(self.start_mirror)
            stack.callback(mirror.kill)
            assert restored == 0
            stored_uj, highest_wh = 0, 0.0  # what the store kept; the most a client saw
            for _ in range(kills):
                seen = len(watch.values) if watch is not None else 0
                started = time.monotonic()
                twin = Drained(self.twin_argv())
                try:
                    await asyncio.to_thread(twin.wait_line, lambda ln: ln.startswith("serving"))
                    f.restart_s.append(time.monotonic() - started)
                    if watch is not None:
                        await watch.wait_for("online", seen)
                    mirror_round = f.kills % MIRROR_KILL_EVERY == 1
                    if mirror_round:  # the twin pulses on while the mirror is dead
                        mirror_wh = await served(self.mirror_port, ENERGY_ADDRESS, ENERGY_WORDS)
                        mirror.proc.send_signal(signal.SIGKILL)
                        mirror.kill()
                        f.mirror_kills += 1
                    reads = await self._poll(highest_wh, self.rng.uniform(0.2, 1.6))
                    seen = len(watch.values) if watch is not None else 0
                finally:
                    killed_at = time.monotonic()
                    twin.proc.send_signal(signal.SIGKILL)
                    twin.kill()
                assert twin.proc.returncode == -signal.SIGKILL
                f.kills += 1
                if watch is not None:
                    await watch.wait_for("offline", seen)  # after the states sent before
                    f.mqtt_offline += 1
                    f.mqtt_states = len(watch.energies_wh)
                    highest_wh = max([highest_wh, *watch.energies_wh])
                now_uj = stored_energy_uj(self.state)
                f.intact += 1
                highest_wh = max([highest_wh, *(wh for _, wh in reads)])
                assert now_uj // UJ_PER_WH >= highest_wh, (
                    f"a client saw {highest_wh} Wh, the store kept {now_uj / UJ_PER_WH:.1f} Wh"
                )
                lost = lost_wh(stored_uj, reads, killed_at, now_uj)
                stored_uj = now_uj
                f.lost_wh.append(max(0.0, lost))
                assert lost <= BOUND_WH, f"lost {lost:.1f} Wh in one kill, bound {BOUND_WH:.1f}"
                if mirror_round:
                    await asyncio.sleep(0.1)  # the last coil writes reach the module
                    mirror, restored = await asyncio.to_thread(self.start_mirror)
                    stack.callback(mirror.kill)
                    assert restored <= count[0], "the mirror restored more than happened"
                    now_wh = await served(self.mirror_port, ENERGY_ADDRESS, ENERGY_WORDS)
                    assert now_wh >= mirror_wh, "the mirror's energy went back across a kill"
            # A clean stop, then every pulse must reach the mirror exactly once.
            twin = Drained(self.twin_argv())
            await asyncio.to_thread(twin.wait_line, lambda ln: ln.startswith("serving"))
            assert await served(self.port, ENERGY_ADDRESS, ENERGY_WORDS) >= highest_wh
            await asyncio.sleep(0.5)
            assert await asyncio.to_thread(twin.stop, signal.SIGTERM) == 0
            assert not any("Traceback" in ln for ln in twin.err)
            f.final_wh = stored_energy_uj(self.state) // UJ_PER_WH
            await asyncio.sleep(0.3)  # the last coil writes reach the module
            f.module_pulses = count[0]
            # Pulses go out only for energy the store has: never a pulse for energy a
            # kill took back (the edges queued for the output when it died are lost).
            assert KH_WH * f.module_pulses <= f.final_wh
            f.mirror_pulses = await self._mirror_settles(count[0])
            energy = await served(self.mirror_port, ENERGY_ADDRESS, ENERGY_WORDS)
            assert energy == KH_WH * f.mirror_pulses
            assert mirror.stop(signal.SIGTERM) == 0
        return f

    async def _poll(self, highest_wh: float, run_s: float) -> list[tuple[float, int]]:
        """Read the energy register until ``run_s`` passed: (answer time, Wh) of each.
        The first read after the restart is at least ``highest_wh`` (what clients saw
        before the kill), and no read is below the one before."""
        reads: list[tuple[float, int]] = []
        last = highest_wh
        deadline = time.monotonic() + run_s
        async with MeterClient(port=self.port) as client:
            while not reads or time.monotonic() < deadline:
                now = await client.read_uint(ENERGY_ADDRESS, ENERGY_WORDS)
                reads.append((time.monotonic(), now))
                self.figures.reads += 1
                assert now >= last, f"energy went back: {last} -> {now} Wh" + (
                    " across the restart" if len(reads) == 1 else " within a run"
                )
                last = now
                await asyncio.sleep(self.rng.uniform(0.0, 0.05))
        return reads

    async def _mirror_settles(self, pulses: int) -> int:
        deadline = time.monotonic() + 15
        while True:
            counted = await served(self.mirror_port, PULSES_ADDRESS, 2)
            assert counted <= pulses, f"the mirror counted {counted} of {pulses} pulses"
            if counted == pulses or time.monotonic() > deadline:
                assert counted == pulses, f"the mirror counted {counted} of {pulses} pulses"
                return counted
            await asyncio.sleep(0.05)
