"""The live twin: clock, profile, meter core, durable store and Modbus servers composed.

Theory of operation
-------------------
A :class:`Twin` owns one meter. On start it restores the meter's non-volatile state
from the store (a process restart is not a power cycle: the state remembers whether
the meter was powered, so energy, counts and the power-up count simply continue),
builds the register image and starts the servers.

Time: the clock says how much *meter time* has elapsed; the meter is stepped in
samples of a fixed period (``sample_s``, 1 s of meter time by default), so at
``--speed 3600`` a 0.1 s tick carries 360 samples and the energy registered is the
same integral as at real time. Under a manual clock nothing ticks: tests call
:meth:`Twin.step`. ``until_s`` freezes the meter at a meter time (the servers keep
answering), which makes values comparable between clients.

After each step that moved the meter, the register image is rebuilt once and handed
to the endpoint (requests never build anything). Checkpoints go to the store every
``checkpoint_interval_s`` of wall time in a worker thread (an fsync must not stall
the servers) and once more, synchronously, on stop. Logging: one line per
start/stop/error, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

from twin.clock import Clock, ManualClock, make_clock
from twin.core import (
    DEFAULT_MODEL,
    AccuracyConfig,
    Command,
    Event,
    MeterConfig,
    MeterCore,
    MeterModel,
    NvState,
    Snapshot,
)
from twin.drive import drive
from twin.errors import ConfigError, ServeError
from twin.modbus import MeterEndpoint, ModbusRtuServer, ModbusTcpServer, SerialSettings
from twin.profiles import load_profile
from twin.registers import (
    Identity,
    RegisterImage,
    WordOrder,
    device_identification,
)
from twin.store import Checkpointer, Store, store_path

log = logging.getLogger(__name__)

_MAX_BLOCK = 86_400  # samples per core call while catching up


@dataclass(frozen=True, slots=True)
class TwinConfig:
    """Everything `minimeter run` decides, validated once."""

    profile: str = "default"
    model: str = DEFAULT_MODEL
    serial_number: str = "MM00000001"
    seed: int | None = None  # profile noise
    accuracy_seed: int | None = None  # a per-meter error curve within class; None: ideal
    host: str = "127.0.0.1"
    port: int | None = 5020  # None: no TCP server; 0: an ephemeral port
    unit: int = 1
    speed: float | None = 1.0  # None: manual clock (tests step explicitly)
    tick_s: float = 0.1
    sample_s: float = 1.0
    until_s: float | None = None
    state_dir: Path | None = None  # None: nothing persisted
    checkpoint_interval_s: float = 10.0
    word_order: Literal["big", "little"] = "big"
    sunspec: bool = True
    allow_writes: bool = False
    allow_energy_reset: bool = False
    serial: SerialSettings | None = None
    meter: MeterConfig = field(init=False)

    def __post_init__(self) -> None:
        if not 1 <= self.unit <= 247:
            raise ConfigError(f"--unit {self.unit}: expected a unit id 1..247")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected 0..65535")
        if self.speed is not None and not (math.isfinite(self.speed) and 0 < self.speed <= 1e7):
            raise ConfigError(f"--speed {self.speed}: expected a factor > 0 and <= 1e7")
        if not 0.001 <= self.tick_s <= 10:
            raise ConfigError(f"tick_s {self.tick_s}: expected 0.001..10 s")
        if not 0.001 <= self.sample_s <= 3600:
            raise ConfigError(f"sample_s {self.sample_s}: expected 0.001..3600 s")
        if self.until_s is not None and not self.until_s >= 0:
            raise ConfigError(f"--until {self.until_s}: expected meter seconds >= 0")
        if not 0.01 <= self.checkpoint_interval_s <= 3600:
            raise ConfigError(
                f"--checkpoint-interval {self.checkpoint_interval_s}: expected 0.01..3600 s"
            )
        if self.port is None and self.serial is None:
            raise ConfigError("nothing to serve: give a TCP --port or a --serial device")
        try:
            model = MeterModel.parse(self.model)
            # An ideal meter unless asked: a seeded error curve would move the energy
            # off the profile's integral, which integrators check against.
            meter = MeterConfig(
                model=model,
                serial_number=self.serial_number,
                accuracy=AccuracyConfig(seed=self.accuracy_seed),
            )
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        object.__setattr__(self, "meter", meter)


class Twin:
    """One live meter behind Modbus servers. Use as ``async with Twin(cfg) as twin``."""

    def __init__(self, config: TwinConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or make_clock(config.speed)
        self.store: Store | None = None
        self.checkpointer: Checkpointer | None = None
        self.core: MeterCore
        self.endpoint: MeterEndpoint
        self.tcp: ModbusTcpServer | None = None
        self.rtu: ModbusRtuServer | None = None
        self.listeners: list[Callable[[list[Event]], None]] = []  # event taps (MQTT, tests)
        self._samples_done = 0
        self._snapshot: Snapshot | None = None
        self._tick_task: asyncio.Task[None] | None = None
        self._started = False
        self._identity = Identity.from_config(config.meter, unit_id=config.unit)
        self._word_order = WordOrder.LITTLE if config.word_order == "little" else WordOrder.BIG

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        cfg = self.config
        profile = load_profile(cfg.profile)
        self._sampler = profile.sampler(cfg.seed)
        nv = None
        if cfg.state_dir is not None:
            self.store = Store(store_path(cfg.state_dir))
            nv = self.store.load(cfg.meter.serial_number)
            self.checkpointer = Checkpointer(self.store, cfg.checkpoint_interval_s)
        self.core = MeterCore(cfg.meter, nv=nv)
        self._snapshot = self.core.snapshot()
        write = self._write if cfg.allow_writes else None
        self.endpoint = MeterEndpoint(
            self._build_image(self._snapshot), device_identification(self._identity), write
        )
        units = {cfg.unit: self.endpoint}
        try:
            if cfg.port is not None:
                self.tcp = ModbusTcpServer(units, cfg.host, cfg.port)
                await self.tcp.start()
            if cfg.serial is not None:
                self.rtu = ModbusRtuServer(units, cfg.serial)
                await self.rtu.start()
        except ServeError:
            await self._close_servers()
            self._close_store()
            raise
        self._started = True
        restored = "restored" if nv is not None else "new"
        log.info(
            "meter %s (%s, %s) started, profile %s, speed %s",
            cfg.meter.serial_number,
            cfg.meter.model.name,
            restored,
            cfg.profile,
            "manual" if isinstance(self.clock, ManualClock) else f"x{self.clock.speed:g}",
        )
        if self.clock.ticks:
            self._tick_task = asyncio.create_task(self._tick_loop(), name="twin-tick")

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
            self._tick_task = None
        await self._close_servers()
        if self.checkpointer is not None:
            self.checkpointer.checkpoint(self._nv_items())
        self._close_store()
        log.info("meter %s stopped", self.config.meter.serial_number)

    async def __aenter__(self) -> Twin:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def run_until_signal(self, on_status: Callable[[Twin], None] | None = None) -> None:
        """Serve until SIGINT or SIGTERM; ``on_status`` is called every ~2 s of wall time."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            while not stop.is_set():
                if on_status is not None:
                    on_status(self)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=2.0)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

    async def _close_servers(self) -> None:
        for server in (self.tcp, self.rtu):
            if server is not None:
                await server.close()

    def _close_store(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    # ---------------------------------------------------------------- the meter

    @property
    def port(self) -> int:
        if self.tcp is None:
            raise RuntimeError("this twin serves no TCP port")
        return self.tcp.port

    @property
    def meter_time_s(self) -> float:
        """Meter time stepped so far (s since this run started)."""
        return self._samples_done * self.config.sample_s

    def snapshot(self) -> Snapshot:
        assert self._snapshot is not None
        return self._snapshot

    def apply(self, command: Command) -> list[Event]:
        events = self.core.apply(command)
        self._publish(events)
        self._refresh()
        return events

    def step(self, seconds: float) -> None:
        """Advance a manual clock by ``seconds`` of meter time and step the meter."""
        if not isinstance(self.clock, ManualClock):
            raise RuntimeError("step() needs a manual clock (TwinConfig(speed=None))")
        self.clock.advance(seconds)
        self._step_to_clock()

    def _step_to_clock(self) -> None:
        cfg = self.config
        target_s = self.clock.elapsed_s()
        if cfg.until_s is not None:
            target_s = min(target_s, cfg.until_s)
        # A hair of slack so 3600.0 s of meter time is 3600 samples, not 3599.
        target = math.floor(target_s / cfg.sample_s + 1e-9)
        n = target - self._samples_done
        if n <= 0:
            return
        t0_s = self._samples_done * cfg.sample_s
        for events in drive(self.core, self._sampler, t0_s, cfg.sample_s, n, _MAX_BLOCK):
            self._publish(events)
        self._samples_done = target
        self._refresh()

    def _refresh(self) -> None:
        snap = self.core.snapshot()
        # repr compares NaN fields as equal, unlike ==; an unchanged meter keeps its image
        if self._snapshot is None or repr(snap) != repr(self._snapshot):
            self._snapshot = snap
            self.endpoint.set_image(self._build_image(snap))

    def _build_image(self, snap: Snapshot) -> RegisterImage:
        self._image = RegisterImage.build(
            snap, self._identity, word_order=self._word_order, sunspec=self.config.sunspec
        )
        return self._image

    def _publish(self, events: list[Event]) -> None:
        if events:
            for listener in self.listeners:
                listener(events)

    def _write(self, address: int, values: list[int]) -> None:
        """Block C write from the wire: decode (raises the Modbus exception) then act."""
        # The image checks a demand write against the other block C values as they are.
        command = self._image.decode_write(
            address, values, energy_reset_unlocked=self.config.allow_energy_reset
        )
        self.apply(command)

    def _nv_items(self) -> list[tuple[str, NvState]]:
        return [(self.config.meter.serial_number, self.core.nv_state())]

    # ---------------------------------------------------------------- ticking

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = self.config.tick_s
        next_t = loop.time()
        while True:
            next_t += tick_s
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            try:
                self._step_to_clock()
                await self._maybe_checkpoint(loop)
            except Exception:
                log.exception("meter %s: step failed", self.config.meter.serial_number)
                await asyncio.sleep(1.0)  # one line per second at most, not per tick
            if next_t < loop.time() - 1.0:
                next_t = loop.time()  # fell far behind (suspended): don't burst

    async def _maybe_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        cp = self.checkpointer
        now = time.monotonic()
        if cp is None or not cp.due(now):
            return
        items = self._nv_items()  # frozen NvState: safe to hand to a thread
        await loop.run_in_executor(None, lambda: cp.checkpoint(items, now_s=now))

    def status_rows(self) -> list[tuple[str, str]]:
        """What the live status table shows (label, value)."""
        s = self.snapshot()
        return [
            ("meter time", f"{self.meter_time_s:.0f} s"),
            ("energy delivered", f"{s.energy_delivered_wh} Wh"),
            ("power", f"{s.power_w:.1f} W  (L1 {s.power_l1_w:.1f}, L2 {s.power_l2_w:.1f})"),
            ("demand / max", f"{s.demand_kw:.3f} / {s.demand_max_kw:.3f} kW"),
            ("status bits", f"0x{s.status_bits:08x}  error {s.error_code}"),
            ("pulses 10/100/1000", f"{s.pulses_10wh} / {s.pulses_100wh} / {s.pulses_1000wh}"),
            ("power-ups", str(s.power_up_count)),
        ]

    def status_line(self) -> str:
        s = self.snapshot()
        return (
            f"t={self.meter_time_s:.0f}s E={s.energy_delivered_wh}Wh P={s.power_w:.1f}W "
            f"D={s.demand_kw:.3f}kW status=0x{s.status_bits:08x} err={s.error_code} "
            f"ups={s.power_up_count}"
        )
