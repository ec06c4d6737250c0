"""The live twin: clock, profiles, meter cores, durable store and Modbus servers composed.

Theory of operation
-------------------
A :class:`Twin` serves a fleet of meters; a single meter is a fleet of one
(:class:`~twin.runtime.config.TwinConfig` turns ``--meters N`` or a fleet file
into a :class:`~twin.runtime.fleet.FleetSpec`). On start it restores each meter's non-volatile
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
(``twin.runtime.config.MAX_SAMPLE_RATE``).

Faults (:mod:`twin.modbus.faults`) and trace hooks are armed on the running twin through
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
from types import TracebackType
from typing import Any

from twin.core import Command, Event, MeterConfig, MeterCore, Snapshot
from twin.loadprofile import Sampler
from twin.modbus.endpoint import MeterEndpoint, UnknownUnit
from twin.modbus.faults import FaultInjector, FaultSpec
from twin.modbus.hooks import WireHooks, WireTrace
from twin.modbus.rtu import ModbusRtuServer
from twin.modbus.tcp import ModbusTcpServer
from twin.runtime.clock import Clock, ManualClock, make_clock
from twin.runtime.config import TwinConfig
from twin.runtime.meters import LiveMeter, meter_configs, nv_items, samplers
from twin.store.sqlite import Checkpointer, Store, store_path

log = logging.getLogger(__name__)

_YIELD_AFTER_S = 0.003  # step at most this long before letting requests through
# Per meter per chunk: big enough to amortise a core call's ~0.1 ms overhead
# (~1.5 ms of work at the core's ~10 M samples/s), small enough to yield often.
_CHUNK_SAMPLES = 16_384
_TICK_BUDGET_S = 0.05  # wall time a tick may spend stepping; the rest waits (lag)


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
        unknown = UnknownUnit(fleet.unknown_unit)
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
