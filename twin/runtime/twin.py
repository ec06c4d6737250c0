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
2. ``meters_part``: the meters, restored by serial (a restart is not a power cycle;
   another model on a serial is refused), with the settings chosen at start
   (``twin.control.resolve``); on a clean stop the last checkpoint of every meter;
3. ``hooks_part``: protocol faults (config and fleet file) and the ``--trace`` file;
4. ``tcp_part``: one Modbus TCP server per port (a port's meters are its unit ids);
5. ``rtu_part``: the Modbus RTU server on ``--serial``;
6. ``mqtt_part`` (:mod:`twin.mqtt.part`): the MQTT publisher, ``twin.mqtt`` (``mqtt`` set);
7. ``http_part`` (:mod:`twin.http.server`): the HTTP API and front panel, ``twin.http``;
8. ``health_part`` (:mod:`twin.runtime.conditions`): the twin's own conditions into
   register 79 (``twin_health``) of every meter, ``twin.health``;
9. ``tick_part``: under a real or accelerated clock, the tick loop that steps the
   meters to the clock (:mod:`twin.runtime.stepping`), expires faults, flushes traces,
   commits the step's changed meters to the store in a worker thread (fsynced every
   ``checkpoint_interval_s`` of wall time) and only then publishes them (images,
   snapshots, events): what a client reads (Modbus, MQTT, HTTP, a pulse output) a
   process crash keeps (:mod:`twin.runtime.committing`). A command publishes its
   meter at once.

A part (MQTT, HTTP, :mod:`twin.mirror.part` after the meters) is one entry in
:data:`PARTS`: a function taking the twin and returning an async context manager that
starts the part, yields, and stops it; it reads its own config field on ``TwinConfig``
(e.g. ``mqtt: MqttConfig | None``) and is a no-op while that is None.

Public API (what parts, the CLI, MQTT, HTTP and HIL fixtures use):

- ``twin.config`` (frozen TwinConfig), ``twin.clock``, ``twin.warnings`` (said once);
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
  ``twin.lagging``, ``twin.set_speed(speed)``; ``twin.store_error`` (why checkpoints
  fail now, e.g. a full disk, else None);
- ``twin.hooks`` (protocol faults and frame traces: ``add_fault``, ``remove_fault``,
  ``clear_faults``, ``faults``, ``add_trace``), ``twin.store``, ``twin.servers`` (TCP,
  by configured port), ``twin.tcp`` (the first), ``twin.rtu``, ``twin.port``/``ports``,
  ``twin.served_port(configured)``; ``twin.http`` (the HTTP server, ``http`` set).

Logging: one line per start/stop/error, never per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from types import TracebackType

from devices import cancel_and_wait
from twin.control import Controller, chosen_demand
from twin.core import Event
from twin.errors import CommandRefused, ConfigError
from twin.http import HttpServer, http_part
from twin.mirror import Mirror, mirror_part
from twin.modbus.hooks import WireHooks
from twin.modbus.rtu import ModbusRtuServer
from twin.modbus.tcp import ModbusTcpServer
from twin.mqtt import MqttPublisher, mqtt_part
from twin.runtime.clock import AcceleratedClock, Clock, ManualClock, make_clock
from twin.runtime.committing import StepCommitter
from twin.runtime.conditions import HealthWatch, health_part
from twin.runtime.config import TwinConfig, check_speed
from twin.runtime.fleet import meter_configs, meter_layers
from twin.runtime.meters import LiveMeter, MeterListener, SamplerPool, nv_items, start_warnings
from twin.runtime.servers import hooks_part, rtu_part, tcp_part
from twin.runtime.stepping import Stepper, fleet_tick_s, tick_loop
from twin.store import Checkpointer, Store, store_path

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
        self.warnings: list[str] = []  # said once at start (a model that misses L2 ...)
        self._stepper = Stepper(self.clock, config.sample_s, config.until_s, self.meters)
        self._stack: AsyncExitStack | None = None
        self.http: HttpServer | None = None  # set by http_part (config.http given)
        self.mirror: Mirror | None = None  # set by mirror_part (config.mirror given)
        self.mqtt: MqttPublisher | None = None  # set by mqtt_part (config.mqtt given)
        self.health = HealthWatch()  # twin_health (register 79), kept by health_part

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

    async def run_until_signal(
        self,
        on_status: Callable[[Twin], None] | None = None,
        on_ready: Callable[[Twin], None] | None = None,
    ) -> None:
        """Serve until SIGINT/SIGTERM: ``on_ready`` once they are caught (a signal after
        it stops cleanly), ``on_status`` every ~2 s of wall time."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            if on_ready is not None:
                on_ready(self)
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
    def store_error(self) -> str | None:
        """Why checkpoints fail now (a full disk, a read-only state dir), else None:
        the meters serve from memory and the store is retried every second."""
        cp = self.checkpointer
        return None if cp is None or cp.error is None else str(cp.error)

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
    pool, profiles = SamplerPool(), cfg.profiles
    configs = meter_configs(fleet, cfg.accuracy_seed, cfg.choices, profiles)
    new_meter = functools.partial(
        LiveMeter,
        pool=pool,
        sunspec=cfg.sunspec,
        control=twin.control if cfg.allow_writes else None,
        on_events=twin._publish,
        fleet_size=len(fleet.meters),
    )
    for i, (spec, mcfg) in enumerate(zip(fleet.meters, configs, strict=True)):
        profile = profiles[spec.profile]
        nv = twin.store.load(spec.serial, model=spec.model) if twin.store is not None else None
        meter = new_meter(spec, mcfg, profile, nv, position=i)
        meter.keep_chosen(chosen_demand(meter_layers(spec, cfg.choices, profile)))
        twin.meters.append(meter)
        twin._by_unit[(spec.port, spec.unit)] = meter
        twin._by_serial[spec.serial] = meter
    twin.warnings.extend(start_warnings(twin.meters))
    yield
    # A clean stop (a failed start raises at the yield): the last checkpoint, servers stopped.
    if twin.checkpointer is not None:
        twin.checkpointer.checkpoint(nv_items(twin.meters))


@asynccontextmanager
async def tick_part(twin: Twin) -> AsyncIterator[None]:
    if not twin.clock.ticks:
        yield  # a manual clock: meter time moves only by twin.step()
        return
    cp = twin.checkpointer
    tick_s = fleet_tick_s(twin.config.tick_s, len(twin.meters))
    committer = (
        None if cp is None else StepCommitter(cp, twin.meters, tick_s, lambda: twin.meter_time_s)
    )
    for m in twin.meters:  # with a store, clients see a step only once it is committed
        m.deferred = committer is not None

    async def after_step() -> None:
        if twin.hooks.intercepting and not twin.hooks.faults.active:
            twin.hooks.sync()  # every fault expired: back to the fast path
        twin.hooks.flush()
        if committer is not None:
            await committer.commit_and_publish()

    task = asyncio.create_task(
        tick_loop(twin._stepper, twin.config.tick_s, after_step), name="twin-tick"
    )
    try:
        yield
    finally:
        await cancel_and_wait([task])
        for m in twin.meters:  # what a cancelled tick held; the clean stop saves it
            m.deferred = False
            m.publish()


#: The parts of every twin, entered in this order and left in reverse. A new part
#: (MQTT, HTTP, a mirror) is one more entry; it does nothing while its config is None.
PARTS: tuple[Part, ...] = (
    store_part,
    meters_part,
    mirror_part,
    hooks_part,
    tcp_part,
    rtu_part,
    mqtt_part,
    http_part,
    health_part,
    tick_part,
)
