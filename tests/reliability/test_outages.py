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

The figures (time to report the outage, time to recover) are printed; ``make soak``
collects them for docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from tests.devices.fakes import CounterModule
from tests.helpers import find_free_port
from tests.reliability.crash import PROFILE, served
from tests.reliability.support import ENERGY_ADDRESS, ENERGY_WORDS, Drained, minimeter

VERDICT_ADDRESS = 76  # mirror_verdict: 3 input stale
STATUS_ADDRESS = 50  # status_bits: uint32 (bit 14: mirror input stale)
INPUT_STALE = 3
KH_WH = 10


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
        await asyncio.to_thread(mirror.wait_line, lambda ln: ln.endswith(" STALE"))
        await counter_module.set_counter(3, 0, 135, low_word_first=True)  # counted meanwhile
        await counter_module.start()
        back_s = await _until("counted again", lambda: _eq(pulses, 35))
        assert await verdict() != INPUT_STALE
        assert (await served(port, STATUS_ADDRESS, 2)) >> 14 & 1 == 0
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
        writes = len(counter_module.coil_writes)
        await counter_module.start()
        back_s = await _until(
            "driven again", lambda: _true(len(counter_module.coil_writes) > writes + 4)
        )
        again = twin.wait_line(lambda ln: "driving again" in ln, stderr=True)
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
