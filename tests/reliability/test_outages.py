"""Outages of what the twin and the mirror talk to, as processes: down, then back.

- A pulse source (the counter module a ``minimeter mirror`` polls) goes away: the
  mirror keeps answering Modbus, says ``input stale`` in register 76 and status bit
  14 and on its status line, and counts what the module counted meanwhile exactly
  once when it is back.
- A pulse sink (the module a ``minimeter run --pulse-out`` drives) goes away: the
  twin keeps serving and stepping, logs the outage once (not once per pulse), shows
  ``pulse_out=FAILING`` on its status line and drives the sink again when it is back.
- A reference meter (a twin read by ``minimeter mirror --reference modbus-meter://``)
  goes away: the mirror logs it once, shows ``REFERENCE-DOWN`` on its status line,
  serves on, and clears the flag when the reference answers again.

- The MQTT broker goes away (killed) and comes back on its port while a Modbus poller
  reads: not one Modbus error, register 79 (``twin_health``) says ``mqtt_disconnected``
  meanwhile, the status line ``mqtt=disconnected``; back, the twin republishes
  ``online`` and its state and the bit clears.
- The store fails (the state dir made unwritable on a real small ext4, as in
  ``test_disk.py``): register 79 and the MQTT state say ``store_failing`` until it
  is writable again.

Each condition is also a bit of register 79 while it lasts (the source's
``pulse_source_stale``, the sink's ``pulse_sink_failing``, the reference's
``reference_down``), cleared when it is over.

The figures (time to report the outage, time to recover) are printed; ``make soak``
collects them for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

from tests.devices.fakes import CounterModule
from tests.helpers import Broker, Received, Subscriber, find_free_port, mosquitto_conf
from tests.reliability.crash import PROFILE, served
from tests.reliability.support import (
    ENERGY_ADDRESS,
    ENERGY_WORDS,
    Drained,
    immutable,
    minimeter,
    small_filesystem,
)
from twin.modbus.client import MeterClient
from twin.registers import BY_NAME, TwinHealth
from twin.store import STORE_FILENAME

VERDICT_ADDRESS = 76  # mirror_verdict: 3 input stale
STATUS_ADDRESS = 50  # status_bits: uint32 (bit 14: mirror input stale)
INPUT_STALE = 3
KH_WH = 10
HEALTH_ADDRESS = BY_NAME["twin_health"].address  # register 79: TwinHealth bits


async def _flag(port: int, flag: TwinHealth, *, on: bool = True) -> bool:
    """Whether register 79 of the meter on ``port`` has ``flag`` set (``on``) or clear."""
    return bool(await served(port, HEALTH_ADDRESS, 1) & flag) is on


async def _until(what: str, check: object, timeout_s: float = 15.0) -> float:
    """Seconds until ``await check()`` is true."""
    start = time.monotonic()
    while not await check():  # type: ignore[operator]
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"not {what} within {timeout_s} s")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


async def test_pulse_source_outage_is_reported_and_counted_once(
    counter_module: CounterModule,
) -> None:
    port = find_free_port()
    await counter_module.set_counter(3, 0, 100, low_word_first=True)
    mirror = Drained(
        minimeter(
            "mirror",
            "--source",
            f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh={KH_WH}&poll=20ms&stale=500ms",
            "--port",
            str(port),
            "--no-state",
            "--status",
            "0.2",
        )
    )
    try:
        await asyncio.to_thread(mirror.wait_line, lambda ln: "serving modbus tcp" in ln)

        async def verdict() -> int:
            return await served(port, VERDICT_ADDRESS, 1)

        async def pulses() -> int:
            return await served(port, 77, 2)

        await asyncio.sleep(0.5)  # the first polls take the baseline
        await counter_module.set_counter(3, 0, 110, low_word_first=True)
        await _until("10 pulses", lambda: _eq(pulses, 10))
        await counter_module.stop()
        stale_s = await _until("stale", lambda: _eq(verdict, INPUT_STALE))
        status = await served(port, STATUS_ADDRESS, 2)
        assert status >> 14 & 1
        await _until("flagged", lambda: _flag(port, TwinHealth.PULSE_SOURCE_STALE))
        await asyncio.to_thread(mirror.wait_line, lambda ln: ln.endswith(" STALE"))
        await counter_module.set_counter(3, 0, 135, low_word_first=True)  # counted meanwhile
        await counter_module.start()
        back_s = await _until("counted again", lambda: _eq(pulses, 35))
        assert await verdict() != INPUT_STALE
        assert (await served(port, STATUS_ADDRESS, 2)) >> 14 & 1 == 0
        await _until("unflagged", lambda: _flag(port, TwinHealth.PULSE_SOURCE_STALE, on=False))
        assert await served(port, ENERGY_ADDRESS, ENERGY_WORDS) == 35 * KH_WH
        assert mirror.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in ln for ln in mirror.err)
        print(f"\nsource outage: stale after {stale_s:.2f} s, counting again {back_s:.2f} s")
    finally:
        mirror.kill()


async def _eq(read: object, value: int) -> bool:
    return bool(await read() == value)  # type: ignore[operator]


async def test_pulse_sink_outage_keeps_the_twin_serving(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    port = find_free_port()
    profile = tmp_path / "constant.yaml"
    profile.write_text(PROFILE)
    twin = Drained(
        minimeter(
            "run",
            "--profile",
            str(profile),
            "--port",
            str(port),
            "--no-state",
            "--speed",
            "60",
            "--pulse-out",
            f"modbus-coil://127.0.0.1:{counter_module.port}?coil=0&timeout=200ms",
        )
    )
    try:
        await asyncio.to_thread(twin.wait_line, lambda ln: ln.startswith("serving"))
        await _until("pulses", lambda: _true(len(counter_module.coil_writes) > 4))
        await counter_module.stop()
        down = time.monotonic()
        energy = await served(port, ENERGY_ADDRESS, ENERGY_WORDS)
        await asyncio.sleep(2.0)
        assert await served(port, ENERGY_ADDRESS, ENERGY_WORDS) > energy  # still stepping
        warnings = [ln for ln in twin.err if "pulse out" in ln]
        assert len(warnings) == 1, warnings[:5]  # the outage, not every pulse
        assert "edges are lost until it answers again" in warnings[0]
        await asyncio.to_thread(twin.wait_line, lambda ln: "pulse_out=FAILING" in ln)
        await _until("flagged", lambda: _flag(port, TwinHealth.PULSE_SINK_FAILING))
        writes = len(counter_module.coil_writes)
        await counter_module.start()
        back_s = await _until(
            "driven again", lambda: _true(len(counter_module.coil_writes) > writes + 4)
        )
        again = twin.wait_line(lambda ln: "driving again" in ln, stderr=True)
        await _until("unflagged", lambda: _flag(port, TwinHealth.PULSE_SINK_FAILING, on=False))
        assert "edges lost while it failed" in again
        assert twin.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in ln for ln in twin.err)
        print(f"\nsink outage {time.monotonic() - down:.1f} s; driven again after {back_s:.2f} s")
    finally:
        twin.kill()


async def _true(value: bool) -> bool:
    return value


async def test_reference_meter_outage_is_reported_and_the_mirror_serves_on(
    counter_module: CounterModule, tmp_path: Path
) -> None:
    """The reference (a twin on a constant load, read over Modbus) goes away and comes
    back: the mirror logs it once, its status line says REFERENCE-DOWN meanwhile, it
    keeps answering Modbus, and the flag clears when the reference answers again."""
    profile = tmp_path / "constant.yaml"
    profile.write_text(PROFILE)
    ref_port, port = find_free_port(), find_free_port()
    reference_argv = minimeter(
        "run", "--profile", str(profile), "--port", str(ref_port), "--no-state"
    )
    reference = Drained(reference_argv)
    mirror = None
    try:
        await asyncio.to_thread(reference.wait_line, lambda ln: ln.startswith("serving"))
        mirror = Drained(
            minimeter(
                "mirror",
                "--source",
                f"adam6051://127.0.0.1:{counter_module.port}?channel=0&kh={KH_WH}&poll=20ms",
                "--reference",
                f"modbus-meter://127.0.0.1:{ref_port}?unit=1&energy=0&type=uint64&poll=100ms",
                "--port",
                str(port),
                "--no-state",
                "--status",
                "0.2",
            )
        )
        await asyncio.to_thread(mirror.wait_line, lambda ln: "serving modbus tcp" in ln)
        assert reference.stop(signal.SIGKILL) == -signal.SIGKILL
        down = time.monotonic()
        line = await asyncio.to_thread(mirror.wait_line, lambda ln: "REFERENCE-DOWN" in ln)
        noticed_s = time.monotonic() - down
        await _until("flagged", lambda: _flag(port, TwinHealth.REFERENCE_DOWN))
        await counter_module.set_counter(3, 0, 4, low_word_first=True)
        assert await served(port, 77, 2) in (0, 4)  # still answering
        reference = Drained(reference_argv)
        await asyncio.to_thread(reference.wait_line, lambda ln: ln.startswith("serving"))
        back = time.monotonic()
        seen = len(mirror.out)

        def cleared(ln: str) -> bool:
            return mirror.out.index(ln) >= seen and "REFERENCE-DOWN" not in ln

        await asyncio.to_thread(mirror.wait_line, lambda ln: ln.startswith("t=") and cleared(ln))
        back_s = time.monotonic() - back
        await _until("unflagged", lambda: _flag(port, TwinHealth.REFERENCE_DOWN, on=False))
        warnings = [ln for ln in mirror.err if "reference" in ln and "retrying" in ln]
        assert 1 <= len(warnings) <= 2, warnings  # refused, then perhaps timed out: not per poll
        assert mirror.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in ln for ln in mirror.err)
        assert "verdict=" in line
        print(f"\nreference outage: noticed {noticed_s:.2f} s, cleared {back_s:.2f} s after back")
    finally:
        reference.kill()
        if mirror is not None:
            mirror.kill()


class Poller:
    """A well-behaved Modbus client: reads register 79 every 20 ms on one connection,
    recording each value with its time and every error (there must be none)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reads: list[tuple[float, int]] = []
        self.errors: list[str] = []

    async def run(self) -> None:
        async with MeterClient(port=self.port) as client:
            while True:
                try:
                    value = await client.read_uint(HEALTH_ADDRESS, 1)
                except Exception as exc:  # recorded: the test asserts there are none
                    self.errors.append(repr(exc))
                else:
                    self.reads.append((time.monotonic(), value))
                await asyncio.sleep(0.02)

    async def until(self, what: str, flag: TwinHealth, *, on: bool) -> float:
        """Seconds until the poller reads ``flag`` set (``on``) or clear."""
        start, seen = time.monotonic(), len(self.reads)
        while not any(bool(v & flag) is on for _, v in self.reads[seen:]):
            if time.monotonic() - start > 20.0:
                raise AssertionError(f"register 79 not {what} within 20 s: {self.reads[-3:]}")
            await asyncio.sleep(0.01)
        return time.monotonic() - start


def _state(serial: str, *, health: int) -> Any:
    def match(m: Received) -> bool:
        if m.topic != f"minimeter/{serial}/state":
            return False
        body = m.json()
        return bool(body["twin_health"] == health)

    return match


async def test_mqtt_broker_outage_is_in_register_79_and_modbus_never_fails(
    tmp_path: Path,
) -> None:
    """The broker is killed and started again on its port while a poller reads: no
    Modbus error, ``mqtt_disconnected`` in register 79 meanwhile, ``online`` and a
    state with ``twin_health`` 0 on MQTT once it is back."""
    broker_port, port = find_free_port(), find_free_port()
    broker = Broker(mosquitto_conf(tmp_path / "mosquitto.conf", broker_port), broker_port)
    broker.start()
    url = f"mqtt://127.0.0.1:{broker_port}"
    twin = Drained(
        minimeter("run", "--port", str(port), "--no-state", "--mqtt", url, "--mqtt-interval", "0.2")
    )
    poller = Poller(port)
    task: asyncio.Task[None] | None = None
    serial = "MM00000001"
    try:
        await asyncio.to_thread(twin.wait_line, lambda ln: ln.startswith("serving"))
        async with Subscriber(broker_port, f"minimeter/{serial}/#") as sub:
            await sub.wait_for(_state(serial, health=0), timeout_s=20)
        task = asyncio.create_task(poller.run())
        await poller.until("clear", TwinHealth.MQTT_DISCONNECTED, on=False)
        broker.kill()
        noticed_s = await poller.until("set", TwinHealth.MQTT_DISCONNECTED, on=True)
        await asyncio.to_thread(twin.wait_line, lambda ln: "mqtt=disconnected" in ln)
        await asyncio.sleep(2.0)  # down for a while: the twin retries with backoff
        broker.start()
        back = time.monotonic()
        recovered_s = await poller.until("clear", TwinHealth.MQTT_DISCONNECTED, on=False)
        async with Subscriber(broker_port, f"minimeter/{serial}/#") as sub:
            online = await sub.wait_for(lambda m: m.topic.endswith("/availability"))
            assert online.payload == b"online"
            state = await sub.wait_for(_state(serial, health=0), timeout_s=20)
            assert state.json()["twin_conditions"] == []
        published_s = time.monotonic() - back
        assert poller.errors == []  # Modbus never noticed the broker
        assert len(poller.reads) > 50
        assert twin.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in ln for ln in twin.err)
        lost = [ln for ln in twin.err if "connection to" in ln and "lost" in ln]
        assert len(lost) == 1, twin.err[-5:]
        print(
            f"\nbroker outage: register 79 set {noticed_s:.2f} s after the kill, clear "
            f"{recovered_s:.2f} s after the broker listened again (state on MQTT after "
            f"{published_s:.2f} s); {len(poller.reads)} Modbus reads, 0 errors"
        )
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        twin.kill()
        broker.kill()


async def test_a_failing_store_is_in_register_79_and_the_mqtt_state(tmp_path: Path) -> None:
    """The state dir turns unwritable (ext4 immutable flag) under a twin publishing to
    MQTT: register 79 and the MQTT state say ``store_failing`` until it is writable."""
    broker_port, port = find_free_port(), find_free_port()
    broker = Broker(mosquitto_conf(tmp_path / "mosquitto.conf", broker_port), broker_port)
    broker.start()
    serial = "MM00000001"
    with small_filesystem(8192) as fs:
        twin = Drained(
            minimeter(
                "run",
                "--port",
                str(port),
                "--state-dir",
                str(fs),
                "--speed",
                "100",
                "--checkpoint-interval",
                "0.2",
                "--mqtt",
                f"mqtt://127.0.0.1:{broker_port}",
                "--mqtt-interval",
                "0.2",
            )
        )
        try:
            await asyncio.to_thread(twin.wait_line, lambda ln: ln.startswith("serving"))
            await _until("saving", lambda: _true((fs / f"{STORE_FILENAME}-wal").exists()))
            async with Subscriber(broker_port, f"minimeter/{serial}/state") as sub:
                for name in (STORE_FILENAME, f"{STORE_FILENAME}-wal"):
                    immutable(fs / name, on=True)
                failed = time.monotonic()
                flag = TwinHealth.STORE_FAILING
                await _until("flagged", lambda: _flag(port, flag))
                flagged_s = time.monotonic() - failed
                state = await sub.wait_for(_state(serial, health=flag), timeout_s=20)
                assert state.json()["twin_conditions"] == ["store_failing"]
                for name in (STORE_FILENAME, f"{STORE_FILENAME}-wal"):
                    immutable(fs / name, on=False)
                back = time.monotonic()
                await _until("unflagged", lambda: _flag(port, flag, on=False))
                cleared_s = time.monotonic() - back
                await sub.wait_for(_state(serial, health=0), timeout_s=20, after=len(sub.messages))
            assert twin.stop(signal.SIGTERM) == 0
            assert not any("Traceback" in ln for ln in twin.err)
            print(
                f"\nstore failing: register 79 set {flagged_s:.2f} s after the dir turned "
                f"unwritable, clear {cleared_s:.2f} s after it was writable again"
            )
        finally:
            twin.kill()
            broker.kill()
