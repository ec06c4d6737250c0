"""The live twin: clock, profiles, meter cores, durable store and Modbus servers composed.

Theory of operation
-------------------
A :class:`Twin` serves a fleet of meters; a single meter is a fleet of one
(``TwinConfig`` turns ``--meters N`` or a fleet file into a
:class:`~twin.fleet.FleetSpec`). On start it restores each meter's non-volatile
state from the store (a process restart is not a power cycle: energy, counts and
the power-up count simply continue), builds the register images and starts one
TCP server per port (meters on a port are its unit ids) and the RTU server.

Time: the clock says how much *meter time* has elapsed; the meters step together in
samples of a fixed period (``sample_s``, 1 s of meter time by default), so at
``--speed 3600`` a 0.1 s tick carries 360 samples and the energy registered is the
same integral as at real time. Under a manual clock nothing ticks: tests call
:meth:`Twin.step`. ``until_s`` freezes the meters at a meter time.

Stepping never starves the servers: a tick steps the fleet in chunks of at most
``_CHUNK_SAMPLES`` samples per meter, yields to the event loop between chunks (and
between meters every few milliseconds), and stops after ``_TICK_BUDGET_S`` of wall
time. What is left stays due: when the core cannot keep up with the clock, meter
time lags behind it (one log line when that starts; :attr:`Twin.lag_s` says how far)
instead of one tick growing without bound while requests and signals wait. The
config also refuses speeds whose sample rate no core could sustain
(``MAX_SAMPLE_RATE``).

Faults (:mod:`twin.faults`) and trace hooks are armed on the running twin through
:meth:`Twin.add_fault` / :meth:`Twin.add_trace`; the servers get an interceptor
or a trace hook only while one is set, so an unfaulted twin keeps its fast path.
Checkpoints of every meter go to the store in one transaction every
``checkpoint_interval_s`` of wall time in a worker thread and once more on stop.
Logging: one line per start/stop/error, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from twin.clock import Clock, ManualClock, make_clock
from twin.core import DEFAULT_MODEL, Command, Event, MeterConfig, MeterCore, Snapshot
from twin.errors import ConfigError
from twin.faults import FaultInjector, FaultSpec
from twin.fleet import FleetSpec, uniform_fleet, without_tcp
from twin.fleet_runtime import LiveMeter, meter_configs, nv_items, samplers
from twin.modbus import ModbusRtuServer, SerialSettings
from twin.modbus_pdu import MeterEndpoint
from twin.modbus_tcp import ModbusTcpServer
from twin.profiles import Sampler
from twin.store import Checkpointer, Store, store_path
from twin.wire_hooks import WireHooks, WireTrace

log = logging.getLogger(__name__)

_YIELD_AFTER_S = 0.003  # step at most this long before letting requests through
# Per meter per chunk: big enough to amortise a core call's ~0.1 ms overhead
# (~1.5 ms of work at the core's ~10 M samples/s), small enough to yield often.
_CHUNK_SAMPLES = 16_384
_TICK_BUDGET_S = 0.05  # wall time a tick may spend stepping; the rest waits (lag)
MAX_SAMPLE_RATE = 1e6  # speed / sample_s: samples per wall second per meter


@dataclass(frozen=True, slots=True)
class TwinConfig:
    """Everything `minimeter run` decides, validated once."""

    profile: str = "default"
    model: str = DEFAULT_MODEL
    serial_number: str = "MM00000001"  # the first meter's; the others count up from it
    seed: int | None = None  # profile noise (meter i: seed + i)
    accuracy_seed: int | None = None  # a per-meter error curve within class; None: ideal
    host: str = "127.0.0.1"
    # None: no TCP server (with a fleet: its meters on the RTU line only, ports dropped);
    # 0: an ephemeral port. A fleet's TCP ports come from the fleet, never from here.
    port: int | None = 5020
    unit: int = 1
    meters: int = 1  # --meters N: unit ids unit..unit+N-1 on the one port
    fleet: FleetSpec | None = None  # a fleet file: replaces the per-meter options above
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
    unknown_unit: Literal["exception", "silent"] | None = None  # None: the fleet's (exception)
    on_power_loss: Literal["answer", "silent"] = "answer"
    faults: tuple[FaultSpec, ...] = ()
    fault_seed: int | None = None
    trace_path: Path | None = None
    max_connections: int = 256
    idle_timeout_s: float | None = None
    meter: MeterConfig = field(init=False)  # the first meter's (the single meter's)
    resolved: FleetSpec = field(init=False)  # the fleet actually served

    def __post_init__(self) -> None:
        for option, seed in (
            ("--seed", self.seed),
            ("--accuracy-seed", self.accuracy_seed),
            ("--fault-seed", self.fault_seed),
        ):
            # The same range as `simulate --seed` and a fleet file's seeds.
            if seed is not None and not 0 <= seed < 2**63:
                raise ConfigError(f"{option} {seed}: out of range; expected 0..2^63-1")
        if not 1 <= self.unit <= 247:
            raise ConfigError(f"--unit {self.unit}: expected a unit id 1..247")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected 0..65535")
        if self.speed is not None and not (math.isfinite(self.speed) and 0 < self.speed <= 1e7):
            raise ConfigError(f"--speed {self.speed}: expected a factor > 0 and <= 1e7")
        if not 0.001 <= self.tick_s <= 10:
            raise ConfigError(f"tick_s {self.tick_s}: expected 0.001..10 s")
        if not 0.001 <= self.sample_s <= 3600:
            raise ConfigError(f"--sample {self.sample_s}: expected 0.001..3600 s")
        if self.speed is not None and self.speed / self.sample_s > MAX_SAMPLE_RATE:
            raise ConfigError(
                f"--speed {self.speed:g} with --sample {self.sample_s:g}: "
                f"{self.speed / self.sample_s:.3g} samples per second per meter; expected "
                f"speed / sample at most {MAX_SAMPLE_RATE:g} (raise --sample or lower --speed)"
            )
        if self.until_s is not None and not self.until_s >= 0:
            raise ConfigError(f"--until {self.until_s}: expected meter seconds >= 0")
        if not 0.01 <= self.checkpoint_interval_s <= 3600:
            raise ConfigError(
                f"--checkpoint-interval {self.checkpoint_interval_s}: expected 0.01..3600 s"
            )
        if not 1 <= self.max_connections <= 100_000:
            raise ConfigError(f"--max-connections {self.max_connections}: expected 1..100000")
        if self.idle_timeout_s is not None and not (
            math.isfinite(self.idle_timeout_s) and self.idle_timeout_s > 0
        ):
            raise ConfigError(f"--idle-timeout {self.idle_timeout_s}: expected seconds > 0")
        fleet = self.fleet
        if fleet is None:
            if self.port is None and self.serial is None:
                raise ConfigError("nothing to serve: give a TCP --port or a --serial device")
            fleet = uniform_fleet(
                self.meters,
                port=self.port,
                first_unit=self.unit,
                serial=self.serial_number,
                model=self.model,
                profile=self.profile,
                seed=self.seed,
                word_order=self.word_order,
                on_power_loss=self.on_power_loss,
            )
        elif self.port is None:  # --no-tcp: the whole fleet on the RTU line
            if self.serial is None:
                raise ConfigError("--no-tcp with a fleet: nothing to serve; give a --serial device")
            fleet = without_tcp(fleet)
        elif self.serial is not None and len(fleet.ports) > 1:
            raise ConfigError(
                f"--serial with a fleet on {len(fleet.ports)} ports: an RTU line has one "
                "unit-id space; expected a fleet on one port (or --no-tcp)"
            )
        if self.unknown_unit is not None:
            fleet = FleetSpec(fleet.meters, unknown_unit=self.unknown_unit)
        configs = meter_configs(fleet, self.accuracy_seed)
        object.__setattr__(self, "resolved", fleet)
        object.__setattr__(self, "meter", configs[0])


class Twin:
    """Live meters behind Modbus servers. Use as ``async with Twin(cfg) as twin``."""

    def __init__(self, config: TwinConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or make_clock(config.speed)
        self.store: Store | None = None
        self.checkpointer: Checkpointer | None = None
        self.meters: list[LiveMeter] = []
        self.servers: dict[int, ModbusTcpServer] = {}  # by configured port
        self.tcp: ModbusTcpServer | None = None  # the first port's server
        self.rtu: ModbusRtuServer | None = None
        self.listeners: list[Callable[[list[Event]], None]] = []  # event taps, any meter
        self.meter_listeners: list[Callable[[LiveMeter, list[Event]], None]] = []
        self.hooks = WireHooks(config.fault_seed)
        self._by_unit: dict[tuple[int | None, int], LiveMeter] = {}
        self._samples_done = 0
        self._lagging = False
        self._tick_task: asyncio.Task[None] | None = None
        self._started = False

    # ---------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        cfg, fleet = self.config, self.config.resolved
        configs = meter_configs(fleet, cfg.accuracy_seed)
        meter_samplers = samplers(fleet)
        try:
            self._open(configs, meter_samplers)
            await self._start_servers()
        except BaseException:  # a half-started twin releases its ports, store and files
            await self._close_servers()
            self._close_files()
            raise
        self.hooks.servers = [*self.servers.values(), *([self.rtu] if self.rtu else [])]
        self.hooks.sync()
        self._started = True
        restored = sum(m.restored for m in self.meters)
        log.info(
            "%d meter(s) started (%d restored), first %s (%s), speed %s",
            len(self.meters),
            restored,
            self.meters[0].serial,
            self.meters[0].config.model.name,
            "manual" if isinstance(self.clock, ManualClock) else f"x{self.clock.speed:g}",
        )
        if self.clock.ticks:
            self._tick_task = asyncio.create_task(self._tick_loop(), name="twin-tick")

    def _open(self, configs: list[MeterConfig], meter_samplers: list[Sampler]) -> None:
        """Store, meters (restored by serial), armed faults and the trace file."""
        cfg, fleet = self.config, self.config.resolved
        if cfg.state_dir is not None:
            self.store = Store(store_path(cfg.state_dir))
            self.checkpointer = Checkpointer(self.store, cfg.checkpoint_interval_s)
        for spec, mcfg, sampler in zip(fleet.meters, configs, meter_samplers, strict=True):
            nv = self.store.load(spec.serial) if self.store is not None else None
            meter = LiveMeter(
                spec,
                mcfg,
                sampler,
                nv,
                sunspec=cfg.sunspec,
                allow_writes=cfg.allow_writes,
                allow_energy_reset=cfg.allow_energy_reset,
                on_events=self._publish,
                fleet_size=len(fleet.meters),
            )
            self.meters.append(meter)
            self._by_unit[(spec.port, spec.unit)] = meter
        self.hooks.add_faults([*cfg.faults, *(f for m in self.meters for f in m.spec.faults)])
        if cfg.trace_path is not None:
            self.hooks.open_trace_file(cfg.trace_path)

    async def _start_servers(self) -> None:
        cfg, fleet = self.config, self.config.resolved
        by_port: dict[int | None, dict[int, MeterEndpoint]] = {}
        for m in self.meters:
            by_port.setdefault(m.spec.port, {})[m.spec.unit] = m.endpoint
        unknown: Literal["exception", "silent"] = (
            "silent" if fleet.unknown_unit == "silent" else "exception"
        )
        for port, units in by_port.items():
            if port is None:
                continue
            server = ModbusTcpServer(
                units,
                cfg.host,
                port,
                unknown_unit=unknown,
                max_connections=cfg.max_connections,
                idle_timeout_s=cfg.idle_timeout_s,
            )
            self.servers[port] = server
            self.tcp = self.tcp or server
            await server.start()
        if cfg.serial is not None:
            self.rtu = ModbusRtuServer(next(iter(by_port.values())), cfg.serial)
            await self.rtu.start()

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
            self.checkpointer.checkpoint(nv_items(self.meters))
        self._close_files()
        log.info("%d meter(s) stopped, first %s", len(self.meters), self.meters[0].serial)

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
        for server in [*self.servers.values(), self.rtu]:
            if server is not None:
                await server.close()

    def _close_files(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self.hooks.close()

    # ---------------------------------------------------------------- the meters

    @property
    def port(self) -> int:
        """The (first) TCP port actually listened on."""
        if self.tcp is None:
            raise RuntimeError("this twin serves no TCP port")
        return self.tcp.port

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers.values()]

    def meter(self, unit: int | None = None, port: int | None = None) -> LiveMeter:
        """A meter by unit id (and configured port when the fleet has several)."""
        if unit is None:
            return self.meters[0]
        key = (port if port is not None else self.meters[0].spec.port, unit)
        try:
            return self._by_unit[key]
        except KeyError:
            raise KeyError(f"no meter with unit id {unit} on port {key[0]}") from None

    @property
    def core(self) -> MeterCore:
        return self.meters[0].core

    @property
    def endpoint(self) -> MeterEndpoint:
        return self.meters[0].endpoint

    @property
    def meter_time_s(self) -> float:
        """Meter time stepped so far (s since this run started)."""
        return self._samples_done * self.config.sample_s

    def snapshot(self, unit: int | None = None, port: int | None = None) -> Snapshot:
        return self.meter(unit, port).snapshot

    def apply(
        self, command: Command, unit: int | None = None, port: int | None = None
    ) -> list[Event]:
        return self.meter(unit, port).apply(command)

    def step(self, seconds: float) -> None:
        """Advance a manual clock by ``seconds`` of meter time and step every meter."""
        if not isinstance(self.clock, ManualClock):
            raise RuntimeError("step() needs a manual clock (TwinConfig(speed=None))")
        self.clock.advance(seconds)
        span = self._due()
        if span is not None:
            for m in self.meters:
                m.step(*span)
            self._samples_done += span[2]

    def _due(self) -> tuple[float, float, int] | None:
        """(profile time, sample period, samples) the clock asks for, or None."""
        cfg = self.config
        target_s = self.clock.elapsed_s()
        if cfg.until_s is not None:
            target_s = min(target_s, cfg.until_s)
        # A hair of slack so 3600.0 s of meter time is 3600 samples, not 3599.
        n = math.floor(target_s / cfg.sample_s + 1e-9) - self._samples_done
        if n <= 0:
            return None
        return self._samples_done * cfg.sample_s, cfg.sample_s, n

    @property
    def lagging(self) -> bool:
        """True once the meters fell behind the clock (the core could not keep up)."""
        return self._lagging

    @property
    def lag_s(self) -> float:
        """Meter time the clock asks for that the meters have not stepped yet."""
        target_s = self.clock.elapsed_s()
        if self.config.until_s is not None:
            target_s = min(target_s, self.config.until_s)
        return max(0.0, target_s - self.meter_time_s)

    async def _step_to_clock(self) -> None:
        """One tick's stepping: chunks, yielding between them, within the wall budget."""
        start = last = time.perf_counter()
        while True:
            span = self._due()
            if span is None:
                return
            t0_s, dt_s, n = span
            n = min(n, _CHUNK_SAMPLES)
            for m in self.meters:
                m.step(t0_s, dt_s, n)
                if time.perf_counter() - last > _YIELD_AFTER_S:
                    await asyncio.sleep(0)  # let waiting requests through between meters
                    last = time.perf_counter()
            self._samples_done += n
            if time.perf_counter() - start > _TICK_BUDGET_S:
                break
            await asyncio.sleep(0)  # requests and signals between chunks, too
            last = time.perf_counter()
        if self._due() is not None and not self._lagging:
            self._lagging = True  # once per run: the status line shows the lag from then on
            log.warning(
                "the meters cannot keep up with the clock (speed x%g, sample %g s, %d "
                "meter(s)): meter time now lags behind it",
                self.clock.speed,
                self.config.sample_s,
                len(self.meters),
            )

    def _publish(self, meter: LiveMeter, events: list[Event]) -> None:
        for listener in self.listeners:
            listener(events)
        for meter_listener in self.meter_listeners:
            meter_listener(meter, events)

    # ---------------------------------------------------------------- faults, traces

    @property
    def faults(self) -> FaultInjector:
        return self.hooks.faults

    def add_fault(
        self,
        spec: FaultSpec | str | Mapping[str, Any],
        *,
        port: int | None = None,
        unit: int | None = None,
    ) -> int:
        """Arm a fault (a spec, its CLI string or mapping) now, optionally narrowed to a
        TCP port and/or unit id; returns its id."""
        return self.hooks.add_fault(spec, port=port, unit=unit)

    def remove_fault(self, fault_id: int) -> bool:
        return self.hooks.remove_fault(fault_id)

    def clear_faults(self) -> None:
        self.hooks.clear_faults()

    def add_trace(self, hook: WireTrace) -> None:
        """Call ``hook(direction, port, unit, frame, unix time)`` for every frame."""
        self.hooks.add_trace(hook)

    def remove_trace(self, hook: WireTrace) -> None:
        self.hooks.remove_trace(hook)

    # ---------------------------------------------------------------- ticking

    async def _tick_loop(self) -> None:
        loop = asyncio.get_running_loop()
        tick_s = self.config.tick_s
        next_t = loop.time()
        while True:
            next_t += tick_s
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            try:
                await self._step_to_clock()
                if self.hooks.intercepting and not self.faults.active:
                    self.hooks.sync()  # every fault expired: back to the fast path
                self.hooks.flush()
                await self._maybe_checkpoint(loop)
            except Exception:
                log.exception("stepping the meters failed")
                await asyncio.sleep(1.0)  # one line per second at most, not per tick
            if next_t < loop.time() - 1.0:
                next_t = loop.time()  # fell far behind (suspended): don't burst

    async def _maybe_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        cp = self.checkpointer
        now = time.monotonic()
        if cp is None or not cp.due(now):
            return
        items = nv_items(self.meters)  # frozen NvStates: safe to hand to a thread
        await loop.run_in_executor(None, lambda: cp.checkpoint(items, now_s=now))
