"""The meters of a live twin: one :class:`LiveMeter` per meter, samplers shared.

Theory of operation
-------------------
A twin always runs a fleet (a single meter is a fleet of one). Each
:class:`LiveMeter` owns one meter's core, its register image and the endpoint the
Modbus servers answer from, and steps through :func:`twin.drive.drive`, the one
loop every caller shares. After a step that moved the meter, the image is rebuilt
once and handed to the endpoint; requests never build anything.

Inputs: a meter plays its profile through ``sampler``. Meters that play the same
profile with the same noise (a profile without noise, or the same seed) get the same
:class:`SharedSampler` from the twin's :class:`SamplerPool`: it remembers the last
block it built (a sampler is pure and a core never writes to its block). Every core
is a row of the pool's :class:`~twin.core.MeterBank`, so the meters of one shared
sampler step as a group (:mod:`twin.runtime.groups`): one core call advances many of
them together, with the same results as one by one. A load
override (``set_load``) gives the meter its own
:class:`~twin.runtime.override.OverrideSampler` until it ends (``for_s`` of meter
time) or is cleared; ``switch_profile`` gives it the new profile's shared sampler.

Registers: a step marks a meter changed only if it ran during the step (powered
before or after it) or had events; an unpowered meter keeps its snapshot and image.
Snapshot and image are built lazily, on first use after a change (a poll, MQTT,
HTTP), so a meter nobody reads costs no rebuild; the endpoint reads through
:class:`_CurrentImage` and its answer cache is dropped on each change.

With a store the twin commits each step before clients see it: a *deferred* meter
holds a step's events and keeps showing its last published snapshot until
:meth:`LiveMeter.publish` (see :mod:`twin.runtime.committing`); its snapshot is then
taken at once (never lazily, which could show a later step not yet committed).

Block-C writes from the wire go through ``twin.control`` like every other command
(see :meth:`LiveMeter.modbus_write`).

A *followed* meter (:meth:`LiveMeter.follow`, ``minimeter mirror``) serves what a
physical meter's pulses say (:mod:`twin.mirror`): its core no longer steps, it
shows the follower's snapshot and image, its checkpoints are the follower's state,
and commands for its core are refused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import numpy as np

from twin.control import Controller, SetLoad
from twin.core import (
    Command,
    Event,
    MeterBank,
    MeterConfig,
    MeterCore,
    NvState,
    Reconfigure,
    SampleBlock,
    SharedMeasurements,
    Snapshot,
)
from twin.drive import drive
from twin.errors import CommandRefused, ConfigError
from twin.loadprofile import Profile, ProfileSpec, Sampler
from twin.mirror import Follower
from twin.modbus.endpoint import CACHE_MAX, FLEET_CACHE_BUDGET, MeterEndpoint
from twin.registers import (
    ExceptionCode,
    Identity,
    ModbusException,
    RegisterImage,
    decode_write,
    device_identification,
)
from twin.runtime.fleet import MeterSpec, OnPowerLoss
from twin.runtime.override import OverrideSampler

MAX_BLOCK = 86_400  # samples per core call while catching up
MeterListener = Callable[["LiveMeter", list[Event]], None]


class SharedSampler(Sampler):
    """A sampler that hands the same block to every meter stepping the same span."""

    def __init__(self, spec: ProfileSpec, seed: int) -> None:
        super().__init__(spec, seed)
        self._key: tuple[float, float, int] | None = None
        self._block: SampleBlock | None = None
        # The groups stepping this sampler's blocks measure each block once (see core).
        self.measurements = SharedMeasurements()

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        key = (t0_s, dt_s, n)
        if key != self._key or self._block is None:
            self._block = super().block(t0_s, dt_s, n)
            self._key = key
        return self._block


class SamplerPool:
    """One :class:`SharedSampler` per profile and seed (the seed only with noise), and
    the bank every meter's core is a row of."""

    def __init__(self) -> None:
        # keyed by the spec's identity; the spec is held in the value, so ids stay unique
        self._shared: dict[tuple[int, int | None], tuple[ProfileSpec, SharedSampler]] = {}
        self.bank = MeterBank()
        self.version = 0  # moves when a meter's sampler or follower changes
        self.grouping: object = None  # how the stepper grouped the meters (groups.py)

    def sampler(self, profile: Profile, seed: int) -> SharedSampler:
        key = (id(profile.spec), seed if profile.spec.noise else None)
        entry = self._shared.get(key)
        if entry is None:
            entry = self._shared[key] = (profile.spec, SharedSampler(profile.spec, seed))
        return entry[1]


class _CurrentImage:
    """What the endpoint reads: the meter's image as it is now (built on first read)."""

    __slots__ = ("_meter",)

    def __init__(self, meter: LiveMeter) -> None:
        self._meter = meter

    def read_registers(self, address: int, count: int) -> bytes:
        return self._meter.image.read_registers(address, count)

    def read_bits(self, fc: int, address: int, count: int) -> bytes:
        return self._meter.image.read_bits(fc, address, count)


class LiveMeter:
    """One meter of the twin: core, sampler, image, endpoint."""

    def __init__(
        self,
        spec: MeterSpec,
        config: MeterConfig,
        profile: Profile,
        nv: NvState | None,
        *,
        position: int,
        pool: SamplerPool,
        sunspec: bool,
        control: Controller | None,
        on_events: Callable[[LiveMeter, list[Event]], None],
        fleet_size: int = 1,
    ) -> None:
        self.spec = spec
        self.config = config
        self.position = position  # in the fleet: the default seed is the profile's + this
        self.pool = pool
        self.profile = profile
        self.sampler: Sampler = pool.sampler(profile, self._seed(profile))
        self.load: SetLoad | None = None  # the load override in force, if any
        self.time_s = 0.0  # profile time of the next sample
        self.restored = nv is not None
        self.follower: Follower | None = None  # a physical meter's pulses move it
        self.core = MeterCore.in_bank(pool.bank, config, nv, shared=self._shared_measurements())
        self.identity = Identity.from_config(config, unit_id=spec.unit)
        self._sunspec = sunspec
        self._control = control
        self._on_events = on_events
        self._deferred = False
        self._held: list[list[Event]] = []  # a deferred step's events, until publish()
        self._stepped = False  # a deferred step moved the registers since publish()
        self._snapshot: Snapshot | None = None
        self._image: RegisterImage | None = None
        # registers beyond the snapshot (the mirror's 70-78, twin_health), as the image has them
        self.extra: Mapping[str, float | int] = {}
        self.health = 0  # twin_health (register 79): the twin's conditions
        self._current = _CurrentImage(self)
        self.endpoint = MeterEndpoint(
            self._current,
            device_identification(self.identity),
            self.modbus_write if control is not None else None,
            cache_max=max(64, min(CACHE_MAX, FLEET_CACHE_BUDGET // fleet_size)),
        )
        self._update_silence()

    @property
    def serial(self) -> str:
        return self.spec.serial

    @property
    def snapshot(self) -> Snapshot:
        """Every register now (built on first use after a change)."""
        snap = self._snapshot
        if snap is None:
            snap = self._snapshot = self.core.snapshot()
        return snap

    @property
    def image(self) -> RegisterImage:
        """The register image now (built on first use after a change)."""
        image = self._image
        if image is None:
            image = self._image = RegisterImage.build(
                self.snapshot,
                self.identity,
                word_order=self.spec.word_order,
                sunspec=self._sunspec,
                extra=self.extra,
            )
        return image

    @property
    def deferred(self) -> bool:
        """True while the twin commits each step before clients see it (a store)."""
        return self._deferred

    @deferred.setter
    def deferred(self, on: bool) -> None:
        self._deferred = on
        if on:
            self.changed()  # the registers now, taken before any step is held

    def nv_state(self) -> NvState:
        return self.core.nv_state() if self.follower is None else self.follower.nv_state()

    def follow(self, follower: Follower | None) -> None:
        """Serve what ``follower`` shows (:meth:`show`) instead of stepping the core."""
        self.follower = follower
        self.pool.version += 1

    def _refuse_if_followed(self, what: str) -> None:
        if self.follower is not None:
            raise CommandRefused(
                f"{what}: meter {self.serial} mirrors a physical meter; its registers "
                "follow that meter's pulses"
            )

    def show(
        self, snapshot: Snapshot, image: RegisterImage, extra: Mapping[str, float | int]
    ) -> None:
        """A followed meter's registers, as the follower has them now."""
        self._snapshot, self._image, self.extra = snapshot, image, extra
        self.endpoint.set_image(self._current)
        self._update_silence()

    def step(self, t0_s: float, dt_s: float, n: int) -> None:
        """Advance ``n`` samples from profile time ``t0_s`` (a meter stepped alone)."""
        if self.follower is not None:
            self.time_s = t0_s + n * dt_s
            return
        for events in drive(self.core, self.sampler, t0_s, dt_s, n, MAX_BLOCK):
            self.stepped(events)
        self.time_s = t0_s + n * dt_s
        sampler = self.sampler
        if isinstance(sampler, OverrideSampler) and not sampler.overridden(self.time_s, dt_s, 1):
            self.clear_load()  # the override's time is up: back to the profile
        self.stepped(moved=True)

    def stepped(self, events: list[Event] | None = None, *, moved: bool = False) -> None:
        """A step's ``events`` (to the listeners, or held while deferred) and, when it
        ``moved`` the registers, a change (shown now, or at the next publish)."""
        if events:
            if self._deferred:
                self._held.append(events)
            else:
                self._on_events(self, events)
        if moved:
            if self._deferred:
                self._stepped = True
            else:
                self.changed()

    def publish(self) -> None:
        """Show what deferred steps held back: their events, then the registers."""
        held, self._held = self._held, []
        for events in held:
            self._on_events(self, events)
        if self._stepped:
            self._stepped = False
            self.changed()

    def keep_chosen(self, chosen: Reconfigure | None) -> None:
        """A restored meter keeps the block C it had (Modbus writes included), but for
        the settings this start chooses (``chosen``): those are applied now."""
        if chosen is None or not self.restored or not self.core.nv_state().power_up_count:
            return  # a new meter took every setting from its configuration
        try:
            self.apply(chosen)
        except ValueError as exc:  # the core's rule, against the saved settings
            msg = f"meter {self.serial}: chosen settings with its saved ones: {exc}"
            raise ConfigError(msg) from None

    def apply(self, command: Command) -> list[Event]:
        """Apply a core command now (what `twin.control` does for the core's commands)."""
        self._refuse_if_followed(type(command).__name__)
        self.publish()  # a held step first: its events come before the command's
        events = self.core.apply(command)
        if events:
            self._on_events(self, events)
        self.changed()
        return events

    # ---------------------------------------------------------------- inputs

    def set_load(self, load: SetLoad) -> None:
        """Override the profile's inputs from the present meter time (``load.for_s``)."""
        self._refuse_if_followed("set_load")
        until_s = None if load.for_s is None else self.time_s + load.for_s
        self.sampler = OverrideSampler(self.profile.spec, self._seed(self.profile), load, until_s)
        self.load = load
        self._sampler_changed()

    def clear_load(self) -> None:
        """End a load override: the profile's inputs again."""
        self.sampler = self.pool.sampler(self.profile, self._seed(self.profile))
        self.load = None
        self._sampler_changed()

    def switch_profile(self, profile: Profile) -> None:
        """Play ``profile`` from the present meter time (a load override stays)."""
        self._refuse_if_followed("switch_profile")
        self.profile = profile
        self.spec = replace(self.spec, profile=profile.source)
        if self.load is None:
            self.clear_load()
        else:  # the override goes on over the new profile, to the same end
            sampler = self.sampler
            until_s = sampler.until_s if isinstance(sampler, OverrideSampler) else None
            self.sampler = OverrideSampler(profile.spec, self._seed(profile), self.load, until_s)
            self._sampler_changed()

    def _sampler_changed(self) -> None:
        self.core.shared = self._shared_measurements()
        self.pool.version += 1  # the stepper regroups the meters

    def _shared_measurements(self) -> SharedMeasurements | None:
        sampler = self.sampler
        return sampler.measurements if isinstance(sampler, SharedSampler) else None

    def _seed(self, profile: Profile) -> int:
        return profile.spec.seed + self.position if self.spec.seed is None else self.spec.seed

    # ---------------------------------------------------------------- the image

    def changed(self) -> None:
        """The core's registers may have moved: drop the snapshot and image (rebuilt on
        first use) and the endpoint's cached answers."""
        if self.follower is not None:
            return  # the follower shows its registers (show)
        # Deferred, the snapshot is taken now: a lazy one could show a later step.
        self._snapshot = self.core.snapshot() if self._deferred else None
        self._image = None
        self.endpoint.set_image(self._current)
        self._update_silence()

    def _update_silence(self) -> None:
        if self.spec.on_power_loss is OnPowerLoss.SILENT:
            self.endpoint.silent = not self.snapshot.powered

    def set_health(self, bits: int) -> None:
        """The twin's conditions into register 79 (a followed meter's come with its image)."""
        if bits == self.health:
            return
        self.health = bits
        if self.follower is None:
            self.extra = {"twin_health": bits} if bits else {}
            self._image = None  # rebuilt from the snapshot shown, with the new extras
            self.endpoint.set_image(self._current)

    def modbus_write(self, address: int, values: list[int]) -> None:
        """A block-C write from the wire, executed through `twin.control` for this meter;
        raises the Modbus exception (02 bad address, 03 refused, with control's reason)."""
        if self._control is None:
            raise RuntimeError("writes are off for this meter")
        write = decode_write(address, values)  # 02/03 for what only the wire gets wrong
        result = self._control.run(write.command, write.body, serial=self.serial)
        if not result.ok:
            raise ModbusException(ExceptionCode.ILLEGAL_DATA_VALUE, result.error or "refused")


def nv_items(meters: Iterable[LiveMeter]) -> list[tuple[str, NvState]]:
    """Every meter's (serial, non-volatile state): the cores' rows read from their bank
    at once (a checkpoint of a big fleet holds the event loop for less), a followed
    meter's from its follower."""
    meters = list(meters)
    live = [m for m in meters if m.follower is None]
    states: dict[int, NvState] = {}
    if live:
        rows = np.array([m.core.row for m in live], np.int64)
        states = dict(zip(rows.tolist(), live[0].core.bank.nv_states(rows), strict=True))
    return [(m.serial, states[m.core.row] if m.follower is None else m.nv_state()) for m in meters]


def start_warnings(meters: Iterable[LiveMeter]) -> list[str]:
    """What a start says once however many meters it concerns: a single-element model on
    a profile that loads L2 (the profile's own words, without their ``warning:``)."""
    found = (m.profile.model_warning(m.spec.model) for m in meters)
    return list(dict.fromkeys(w.removeprefix("warning: ") for w in found if w is not None))
