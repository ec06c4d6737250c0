"""The live twin: a composition of parts (store, meters, faults, servers, clock).

Theory of operation
-------------------
A :class:`Twin` serves a fleet of meters; a single meter is a fleet of one
(:class:`~twin.runtime.config.TwinConfig` turns ``--meters N`` or a fleet file into a
:class:`~twin.runtime.fleet.FleetSpec`). ``async with Twin(config) as twin`` enters its
:data:`PARTS` in order on one :class:`~contextlib.AsyncExitStack` and leaves them in
reverse, so a half-started twin (a port taken, a device missing) releases everything
it had opened (ports, the store and its lock, the trace file):

1. ``store_part``: the durable store and its checkpointer (``state_dir`` set);
2. ``meters_part``: the meters, each restored by serial (a process restart is not a
   power cycle: energy, counts and the power-up count continue); on a clean stop the
   last checkpoint of every meter, in one transaction;
3. ``hooks_part``: protocol faults (config and fleet file) and the ``--trace`` file;
4. ``tcp_part``: one Modbus TCP server per port (a port's meters are its unit ids);
5. ``rtu_part``: the Modbus RTU server on ``--serial``;
6. ``mqtt_part``, ``http_part``: the MQTT publisher and the HTTP API (``twin.mqtt``, ``.http``);
7. ``tick_part``: under a real or accelerated clock, the tick loop that steps the
   meters to the clock (:mod:`twin.runtime.stepping`), expires faults, flushes traces
   and checkpoints every ``checkpoint_interval_s`` of wall time in a worker thread.

A part (MQTT, HTTP, :mod:`twin.mirror.part` after the meters) is one entry in
:data:`PARTS`: a function taking the twin and returning an async context manager that
starts the part, yields, and stops it; it reads its own config field on ``TwinConfig``
(e.g. ``mqtt: MqttConfig | None``) and is a no-op while that is None.

Public API (what parts, the CLI, MQTT, HTTP and HIL fixtures use):

- ``twin.config`` (frozen TwinConfig), ``twin.clock``;
- ``twin.meters``: the :class:`~twin.runtime.meters.LiveMeter` s, each with ``.serial``,
  ``.spec`` (unit, port, model, profile...), ``.snapshot`` (frozen core Snapshot),
  ``.config`` (core MeterConfig), ``.load`` (the load override in force),
  ``.apply(core command)``; ``twin.meter(unit, port)`` by unit id,
  ``twin.meter_by_serial(serial)`` (None when unknown);
- ``twin.subscribe(listener) -> unsubscribe``: ``listener(meter, events)`` is called on
  the event-loop thread with each meter's core events;
- ``twin.control``: the :class:`~twin.control.Controller` of this twin,
  ``twin.control.run(name, body, serial=...) -> Result`` (every channel's commands);
- ``twin.meter_time_s``, ``twin.step(seconds)`` (manual clock), ``twin.lag_s``,
  ``twin.lagging``, ``twin.set_speed(speed)``;
- ``twin.hooks`` (protocol faults and frame traces: ``add_fault``, ``remove_fault``,
  ``clear_faults``, ``faults``, ``add_trace``), ``twin.store``, ``twin.servers`` (TCP,
  by configured port), ``twin.tcp`` (the first), ``twin.rtu``, ``twin.port``/``ports``,
  ``twin.served_port(configured)``; ``twin.http`` (the HTTP server, ``http`` set).

Logging: one line per start/stop/error, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType

from twin.control import Controller
from twin.core import Event
from twin.errors import CommandRefused, ConfigError
from twin.http import HttpServer, http_part
from twin.loadprofile import Profile, load_profile
from twin.mirror import Mirror, mirror_part
from twin.modbus.endpoint import MeterEndpoint
from twin.modbus.hooks import WireHooks
from twin.modbus.rtu import ModbusRtuServer
from twin.modbus.tcp import ModbusTcpServer
from twin.mqtt import MqttPublisher, mqtt_part
from twin.runtime.clock import AcceleratedClock, Clock, ManualClock, make_clock
from twin.runtime.config import TwinConfig, check_speed
from twin.runtime.fleet import meter_configs
from twin.runtime.meters import LiveMeter, MeterListener, SamplerPool, nv_items
from twin.runtime.stepping import Stepper, tick_loop
from twin.store.sqlite import Checkpointer, Store, store_path

log = logging.getLogger(__name__)

Part = Callable[["Twin"], AbstractAsyncContextManager[object]]


class Twin:
    """Live meters behind Modbus servers. Use as ``async with Twin(cfg) as twin``."""

    def __init__(self, config: TwinConfig, *, clock: Clock | None = None) -> None:
        self.config = config
        self.clock: Clock = clock or make_clock(config.speed)
        self.control = Controller(self)
        self.hooks = WireHooks(config.fault_seed)
        self.store: Store | None = None
        self.checkpointer: Checkpointer | None = None
        self.meters: list[LiveMeter] = []
        self.servers: dict[int, ModbusTcpServer] = {}  # by configured port
        self.rtu: ModbusRtuServer | None = None
        self._by_unit: dict[tuple[int | None, int], LiveMeter] = {}
        self._by_serial: dict[str, LiveMeter] = {}
        self._listeners: list[MeterListener] = []
        self._stepper = Stepper(self.clock, config.sample_s, config.until_s, self.meters)
        self._stack: AsyncExitStack | None = None
        self.http: HttpServer | None = None  # set by http_part (config.http given)
        self.mirror: Mirror | None = None  # set by mirror_part (config.mirror given)
        self.mqtt: MqttPublisher | None = None  # set by mqtt_part (config.mqtt given)

    async def start(self) -> None:
        if self._stack is not None:
            raise RuntimeError("this twin is already started")
        async with AsyncExitStack() as stack:  # a part that fails unwinds those before it
            for part in PARTS:
                await stack.enter_async_context(part(self))
            self._stack = stack.pop_all()
        log.info(
            "%d meter(s) started (%d restored), first %s (%s), speed %s",
            len(self.meters),
            sum(m.restored for m in self.meters),
            self.meters[0].serial,
            self.meters[0].config.model.name,
            "manual" if isinstance(self.clock, ManualClock) else f"x{self.clock.speed:g}",
        )

    async def stop(self) -> None:
        stack, self._stack = self._stack, None
        if stack is None:
            return
        await stack.aclose()
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

    # ---------------------------------------------------------------- the meters

    @property
    def tcp(self) -> ModbusTcpServer | None:
        """The first port's server."""
        return next(iter(self.servers.values()), None)

    @property
    def port(self) -> int:
        """The (first) TCP port actually listened on."""
        if self.tcp is None:
            raise RuntimeError("this twin serves no TCP port")
        return self.tcp.port

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self.servers.values()]

    def served_port(self, port: int | None) -> int | None:
        """The TCP port listened on for meters configured on ``port`` (0: ephemeral)."""
        server = None if port is None else self.servers.get(port)
        return port if server is None else server.port

    def meter(self, unit: int | None = None, port: int | None = None) -> LiveMeter:
        """A meter by unit id (and configured port when the fleet has several); the
        first meter without a unit id."""
        if unit is None:
            return self.meters[0]
        key = (port if port is not None else self.meters[0].spec.port, unit)
        try:
            return self._by_unit[key]
        except KeyError:
            raise KeyError(f"no meter with unit id {unit} on port {key[0]}") from None

    def meter_by_serial(self, serial: str) -> LiveMeter | None:
        return self._by_serial.get(serial)

    def subscribe(self, listener: MeterListener) -> Callable[[], None]:
        """Call ``listener(meter, events)`` with every meter's core events; returns the
        function that unsubscribes it."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            with contextlib.suppress(ValueError):
                self._listeners.remove(listener)

        return unsubscribe

    def _publish(self, meter: LiveMeter, events: list[Event]) -> None:
        for listener in tuple(self._listeners):  # a listener may unsubscribe itself
            listener(meter, events)

    @property
    def meter_time_s(self) -> float:
        """Meter time stepped so far (s since this run started)."""
        return self._stepper.meter_time_s

    def step(self, seconds: float) -> None:
        """Advance a manual clock by ``seconds`` of meter time and step every meter."""
        self._stepper.step(seconds)

    @property
    def lagging(self) -> bool:
        """True once the meters fell behind the clock (the core could not keep up)."""
        return self._stepper.lagging

    @property
    def lag_s(self) -> float:
        """Meter time the clock asks for that the meters have not stepped yet."""
        return self._stepper.lag_s

    def set_speed(self, speed: float) -> None:
        """Run the clock at ``speed`` from now on; CommandRefused on a manual clock or
        a speed the config would refuse."""
        clock = self.clock
        if isinstance(clock, ManualClock):
            raise CommandRefused(
                "set_speed: this twin runs on a manual clock (speed None); its meter time "
                "moves only by step()"
            )
        if not isinstance(clock, AcceleratedClock):
            raise CommandRefused(f"set_speed: this twin's clock ({type(clock).__name__}) is fixed")
        try:
            check_speed(speed, self.config.sample_s, option="speed", sample_option="sample_s")
        except ConfigError as exc:
            raise CommandRefused(f"set_speed: {exc}") from None
        clock.set_speed(speed)


# -------------------------------------------------------------------- the parts


@asynccontextmanager
async def store_part(twin: Twin) -> AsyncIterator[None]:
    state_dir = twin.config.state_dir
    if state_dir is None:
        yield
        return
    store = twin.store = Store(store_path(state_dir))
    twin.checkpointer = Checkpointer(store, twin.config.checkpoint_interval_s)
    try:
        yield
    finally:
        store.close()
        twin.store = None


@asynccontextmanager
async def meters_part(twin: Twin) -> AsyncIterator[None]:
    cfg, fleet = twin.config, twin.config.resolved
    pool, profiles = SamplerPool(), dict[str, Profile]()
    control = twin.control if cfg.allow_writes else None
    for i, (spec, mcfg) in enumerate(
        zip(fleet.meters, meter_configs(fleet, cfg.accuracy_seed), strict=True)
    ):
        profile = profiles.get(spec.profile)
        if profile is None:
            profile = profiles[spec.profile] = load_profile(spec.profile)
        meter = LiveMeter(
            spec,
            mcfg,
            profile,
            twin.store.load(spec.serial) if twin.store is not None else None,
            position=i,
            pool=pool,
            sunspec=cfg.sunspec,
            control=control,
            on_events=twin._publish,
            fleet_size=len(fleet.meters),
        )
        twin.meters.append(meter)
        twin._by_unit[(spec.port, spec.unit)] = meter
        twin._by_serial[spec.serial] = meter
    yield
    # A clean stop (a failed start raises at the yield and saves nothing): the last
    # checkpoint, after the servers and the tick loop have stopped.
    if twin.checkpointer is not None:
        twin.checkpointer.checkpoint(nv_items(twin.meters))


@asynccontextmanager
async def hooks_part(twin: Twin) -> AsyncIterator[None]:
    cfg = twin.config
    twin.hooks.add_faults([*cfg.faults, *(f for m in twin.meters for f in m.spec.faults)])
    try:
        if cfg.trace_path is not None:
            twin.hooks.open_trace_file(cfg.trace_path)
        yield
    finally:
        twin.hooks.close()


def _endpoints_by_port(twin: Twin) -> dict[int | None, dict[int, MeterEndpoint]]:
    by_port: dict[int | None, dict[int, MeterEndpoint]] = {}
    for m in twin.meters:
        by_port.setdefault(m.spec.port, {})[m.spec.unit] = m.endpoint
    return by_port


@asynccontextmanager
async def tcp_part(twin: Twin) -> AsyncIterator[None]:
    cfg = twin.config
    try:
        for port, units in _endpoints_by_port(twin).items():
            if port is None:
                continue
            server = ModbusTcpServer(
                units,
                cfg.host,
                port,
                unknown_unit=cfg.resolved.unknown_unit,
                max_connections=cfg.max_connections,
                idle_timeout_s=cfg.idle_timeout_s,
                unit_aliases=cfg.unit_aliases,
                tls=cfg.tls.policy() if cfg.tls is not None else None,
            )
            twin.servers[port] = server
            await server.start()
        twin.hooks.servers.extend(twin.servers.values())
        twin.hooks.sync()
        yield
    finally:
        for server in twin.servers.values():
            await server.close()
            if server in twin.hooks.servers:
                twin.hooks.servers.remove(server)


@asynccontextmanager
async def rtu_part(twin: Twin) -> AsyncIterator[None]:
    settings = twin.config.serial
    if settings is None:
        yield
        return
    server = twin.rtu = ModbusRtuServer(next(iter(_endpoints_by_port(twin).values())), settings)
    try:
        await server.start()
        twin.hooks.servers.append(server)
        twin.hooks.sync()
        yield
    finally:
        await server.close()
        if server in twin.hooks.servers:
            twin.hooks.servers.remove(server)


@asynccontextmanager
async def tick_part(twin: Twin) -> AsyncIterator[None]:
    if not twin.clock.ticks:
        yield  # a manual clock: meter time moves only by twin.step()
        return
    loop = asyncio.get_running_loop()

    async def after_step() -> None:
        if twin.hooks.intercepting and not twin.hooks.faults.active:
            twin.hooks.sync()  # every fault expired: back to the fast path
        twin.hooks.flush()
        cp, now = twin.checkpointer, time.monotonic()
        if cp is not None and cp.due(now):
            items = nv_items(twin.meters)  # frozen NvStates: safe to hand to a thread
            await loop.run_in_executor(None, lambda: cp.checkpoint(items, now_s=now))

    task = asyncio.create_task(
        tick_loop(twin._stepper, twin.config.tick_s, after_step), name="twin-tick"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


#: The parts of every twin, entered in this order and left in reverse. A new part
#: (MQTT, HTTP, a mirror) is one more entry; it does nothing while its config is None.
PARTS: tuple[Part, ...] = (
    *(store_part, meters_part, mirror_part, hooks_part, tcp_part, rtu_part),
    *(mqtt_part, http_part, tick_part),
)
