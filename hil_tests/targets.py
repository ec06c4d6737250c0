"""What the suite runs against: ``--target twin | modbus://HOST:PORT[?unit=N] | pulses:URL``.

Theory of operation
-------------------
Every check reads the meter over Modbus with the one client helper, decoding by the
register map (``twin.registers``), so a check means the same against any target.
What differs is control:

- ``twin`` (default): an in-process twin per test on a free port with a manual clock
  (:class:`twin.hil.MeterTwin`); the test gives it a :class:`~hil_tests.scenario.Scenario`
  (its inputs) and moves its clock. Options: ``--meter-model``, ``--twin-accuracy-seed``,
  ``--inject-error``.
- ``modbus://HOST:PORT[?unit=N&word_order=little]``: any device speaking map v1 (a
  twin elsewhere, a gateway). Its inputs and clock are not ours: tests that need to
  set them skip with that reason; time-window checks wait for the device's own clock
  (``uptime_s``).
- ``pulses:URL --load FILE``: a physical meter seen only through its pulse outputs
  (a ``devices`` source URL) while a rig applies the load profile FILE
  (:mod:`hil_tests.pulses`, :mod:`hil_tests.rig`). Tests that need registers skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devices import open_source
from hil_tests.scenario import Scenario
from twin.core import DEFAULT_MODEL
from twin.errors import TwinError
from twin.hil import MeterTwin
from twin.loadprofile import load_profile
from twin.modbus.client import MeterClient
from twin.registers import REGISTERS, Register, WordOrder, decode

BLOCK_A = tuple(r for r in REGISTERS if r.block == "A")
BLOCK_B = tuple(r for r in REGISTERS if r.block == "B")
WAIT_WALL_S = 30.0  # longest a time-window check waits for a device's own clock

Values = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Target:
    kind: str  # twin | modbus | pulses
    text: str
    host: str = "127.0.0.1"
    port: int = 0
    unit: int = 1
    word_order: str = "big"
    load: str | None = None  # pulses: the rig's load profile (a file or a shipped name)
    pulse_url: str = ""  # pulses: the devices source URL
    model: str = DEFAULT_MODEL
    twin_options: dict[str, Any] = field(default_factory=dict)
    errors: tuple[str, ...] = ()  # twin target: meter errors injected at start (KIND[:PCT])

    def with_errors(self, errors: tuple[str, ...]) -> Target:
        if errors and not self.drivable:
            raise pytest.UsageError(f"--inject-error applies to --target twin, not {self.text}")
        return replace(self, errors=errors)

    @property
    def drivable(self) -> bool:
        return self.kind == "twin"

    def require_drive(self) -> None:
        self.require_registers()
        if not self.drivable:
            pytest.skip(
                f"needs control of the meter's inputs and clock, which target {self.text} "
                "does not give (run with --target twin)"
            )

    def require_registers(self) -> None:
        if self.kind == "pulses":
            pytest.skip(f"target {self.text} shows pulse outputs only, no registers")

    def require_pulses(self) -> None:
        if self.kind != "pulses":
            pytest.skip(f"checks a pulse recording; target {self.text} is read by its registers")


def parse_target(text: str, load: str | None, twin_options: dict[str, Any]) -> Target:
    model = str(twin_options.get("model", DEFAULT_MODEL))
    if text == "twin":
        return Target("twin", text, model=model, twin_options=twin_options)
    if text.startswith("pulses:"):
        url = text.removeprefix("pulses:")
        if not load:
            raise pytest.UsageError(f"--target {text}: expected --load FILE (the rig's load)")
        try:
            open_source(url)  # parsed now: a bad URL is a usage error, not 30 test errors
            load_profile(load)
        except TwinError as exc:
            raise pytest.UsageError(f"--target {text} --load {load}: {exc}") from None
        return Target("pulses", text, load=load, pulse_url=url, model=model)
    parts = urlsplit(text)
    if parts.scheme != "modbus" or not parts.hostname or not parts.port:
        raise pytest.UsageError(
            f"--target {text!r}: expected twin, modbus://HOST:PORT[?unit=N] or pulses:URL"
        )
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    unknown = set(query) - {"unit", "word_order"}
    if unknown:
        raise pytest.UsageError(
            f"--target {text}: unknown {sorted(unknown)}; expected unit=, word_order="
        )
    unit = query.get("unit", "1")
    order = query.get("word_order", "big")
    if not unit.isdigit() or not 0 <= int(unit) <= 247 or order not in ("big", "little"):
        raise pytest.UsageError(f"--target {text}: expected unit=0..247, word_order=big|little")
    return Target("modbus", text, parts.hostname, parts.port, int(unit), order)


def decode_block(regs: tuple[Register, ...], first: int, words: list[int], order: str) -> Values:
    wo = WordOrder(order)
    return {r.name: decode(r.kind, words[r.address - first : r.end - first], wo) for r in regs}


class MeterUnderTest:
    """One meter of a target during a test: reads by register name, moves its time."""

    def __init__(self, target: Target, client: MeterClient, twin: MeterTwin | None) -> None:
        self.target = target
        self.client = client
        self.twin = twin
        self.word_order = twin.config.word_order if twin is not None else target.word_order
        self.host = twin.host if twin is not None else target.host
        self.port = twin.port if twin is not None else target.port
        self.unit = twin.unit if twin is not None else target.unit

    async def read(self) -> Values:
        """Blocks A and B decoded by the map (two reads)."""
        a = await self.client.read_registers(0, 80)
        b = await self.client.read_registers(100, 48)
        return {
            **decode_block(BLOCK_A, 0, a, self.word_order),
            **decode_block(BLOCK_B, 100, b, self.word_order),
        }

    def settle(self, meter_s: float) -> None:
        """Give a twin some history to read; a live device already has its own."""
        if self.twin is not None:
            self.twin.advance(meter_s)

    async def elapse(self, meter_s: float) -> float:
        """Let ``meter_s`` of meter time pass; returns the meter seconds that passed."""
        if self.twin is not None:
            self.twin.advance(meter_s)
            return meter_s
        start = (await self.read())["uptime_s"]
        wall0 = time.monotonic()
        while time.monotonic() - wall0 < WAIT_WALL_S:
            await asyncio.sleep(0.1)
            passed = (await self.read())["uptime_s"] - start
            if passed >= meter_s:
                return float(passed)
        pytest.skip(
            f"target {self.target.text}: its clock did not advance {meter_s:g} s within "
            f"{WAIT_WALL_S:g} s of wall time (run it faster, e.g. minimeter run --speed 600)"
        )


@contextlib.asynccontextmanager
async def open_meter(
    target: Target, scenario: Scenario | None = None, **options: Any
) -> AsyncIterator[MeterUnderTest]:
    """The target's meter; on the twin target a fresh twin playing ``scenario``."""
    target.require_registers()
    if target.kind == "modbus":
        if scenario is not None or options:
            target.require_drive()
        async with MeterClient(target.host, target.port, target.unit) as client:
            yield MeterUnderTest(target, client, None)
        return
    with tempfile.TemporaryDirectory(prefix="hil-") as tmp:
        profile = "default"
        if scenario is not None:
            path = Path(tmp) / f"{scenario.name}.yaml"
            path.write_text(scenario.profile_yaml())
            profile = str(path)
        merged = {"profile": profile, "allow_writes": True, **target.twin_options, **options}
        with MeterTwin(**merged) as twin:
            for spec in target.errors:
                kind, _, pct = spec.partition(":")
                twin.inject(kind, **({"error_pct": float(pct)} if pct else {}))
            async with twin.client() as client:
                yield MeterUnderTest(target, client, twin)
