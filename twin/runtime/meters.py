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
block it built, so when the fleet steps together the first meter builds the block and
the others reuse it (a sampler is pure and a core never writes to its block). The
per-call cost of ``MeterCore.advance`` (~0.1 ms) is what remains, which is why the
runtime yields to the event loop between meters while it steps a large fleet. A
load override (``set_load``) gives the meter its own
:class:`~twin.runtime.override.OverrideSampler` until it ends (``for_s`` of meter
time) or is cleared; ``switch_profile`` gives it the new profile's shared sampler.

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

from twin.control import Controller, SetLoad
from twin.core import (
    Command,
    Event,
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
        # The meters stepping this sampler's blocks measure each block once (see core).
        self.measurements = SharedMeasurements()

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        key = (t0_s, dt_s, n)
        if key != self._key or self._block is None:
            self._block = super().block(t0_s, dt_s, n)
            self._key = key
        return self._block


class SamplerPool:
    """One :class:`SharedSampler` per profile and seed (the seed only with noise)."""

    def __init__(self) -> None:
        # keyed by the spec's identity; the spec is held in the value, so ids stay unique
        self._shared: dict[tuple[int, int | None], tuple[ProfileSpec, SharedSampler]] = {}

    def sampler(self, profile: Profile, seed: int) -> SharedSampler:
        key = (id(profile.spec), seed if profile.spec.noise else None)
        entry = self._shared.get(key)
        if entry is None:
            entry = self._shared[key] = (profile.spec, SharedSampler(profile.spec, seed))
        return entry[1]


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
        self._pool = pool
        self.profile = profile
        self.sampler: Sampler = pool.sampler(profile, self._seed(profile))
        self.load: SetLoad | None = None  # the load override in force, if any
        self.time_s = 0.0  # profile time of the next sample
        self.restored = nv is not None
        self.follower: Follower | None = None  # a physical meter's pulses move it
        self.core = MeterCore(config, nv=nv, shared=self._shared_measurements())
        self.identity = Identity.from_config(config, unit_id=spec.unit)
        self._sunspec = sunspec
        self._control = control
        self._on_events = on_events
        # The twin commits each step to its store before clients see it: a deferred
        # step holds its events and image until publish() (see twin.runtime.twin).
        self.deferred = False
        self._held: list[list[Event]] = []
        self.snapshot: Snapshot = self.core.snapshot()
        # registers beyond the snapshot (the mirror's 70-78, twin_health), as the image has them
        self.extra: Mapping[str, float | int] = {}
        self.health = 0  # twin_health (register 79): the twin's conditions
        self._snapshot_repr: str | None = repr(self.snapshot)
        self.image = self._build_image()
        self.endpoint = MeterEndpoint(
            self.image,
            device_identification(self.identity),
            self.modbus_write if control is not None else None,
            cache_max=max(64, min(CACHE_MAX, FLEET_CACHE_BUDGET // fleet_size)),
        )
        self._update_silence()

    @property
    def serial(self) -> str:
        return self.spec.serial

    def nv_state(self) -> NvState:
        return self.core.nv_state() if self.follower is None else self.follower.nv_state()

    def follow(self, follower: Follower | None) -> None:
        """Serve what ``follower`` shows (:meth:`show`) instead of stepping the core."""
        self.follower = follower

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
        self.snapshot, self.image, self.extra = snapshot, image, extra
        self.endpoint.set_image(image)

    def step(self, t0_s: float, dt_s: float, n: int) -> None:
        """Advance ``n`` samples from profile time ``t0_s``, then refresh the image."""
        if self.follower is not None:
            self.time_s = t0_s + n * dt_s
            return
        for events in drive(self.core, self.sampler, t0_s, dt_s, n, MAX_BLOCK):
            if events and self.deferred:
                self._held.append(events)
            elif events:
                self._on_events(self, events)
        self.time_s = t0_s + n * dt_s
        sampler = self.sampler
        if isinstance(sampler, OverrideSampler) and not sampler.overridden(self.time_s, dt_s, 1):
            self.clear_load()  # the override's time is up: back to the profile
        if not self.deferred:
            self.refresh()

    def publish(self) -> None:
        """Show what deferred steps held back: their events, then the image."""
        held, self._held = self._held, []
        for events in held:
            self._on_events(self, events)
        self.refresh()

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
        self.refresh()
        return events

    # ---------------------------------------------------------------- inputs

    def set_load(self, load: SetLoad) -> None:
        """Override the profile's inputs from the present meter time (``load.for_s``)."""
        self._refuse_if_followed("set_load")
        until_s = None if load.for_s is None else self.time_s + load.for_s
        self.sampler = OverrideSampler(self.profile.spec, self._seed(self.profile), load, until_s)
        self.load = load
        self.core.shared = self._shared_measurements()

    def clear_load(self) -> None:
        """End a load override: the profile's inputs again."""
        self.sampler = self._pool.sampler(self.profile, self._seed(self.profile))
        self.load = None
        self.core.shared = self._shared_measurements()

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
            self.core.shared = self._shared_measurements()

    def _shared_measurements(self) -> SharedMeasurements | None:
        sampler = self.sampler
        return sampler.measurements if isinstance(sampler, SharedSampler) else None

    def _seed(self, profile: Profile) -> int:
        return profile.spec.seed + self.position if self.spec.seed is None else self.spec.seed

    # ---------------------------------------------------------------- the image

    def refresh(self) -> None:
        if self.follower is not None:
            return  # the follower shows its registers (show)
        snap = self.core.snapshot()
        last = self.snapshot
        if snap.uptime_s != last.uptime_s or snap.energy_delivered_uj != last.energy_delivered_uj:
            changed, text = True, None  # a running meter: no need to compare the rest
        else:
            # repr compares NaN fields as equal, unlike ==; an unchanged meter keeps its image
            text = repr(snap)
            changed = text != (self._snapshot_repr or repr(last))
        if changed:
            self.snapshot, self._snapshot_repr = snap, text
            self.image = self._build_image()
            self.endpoint.set_image(self.image)
            self._update_silence()

    def _update_silence(self) -> None:
        self.endpoint.silent = (
            self.spec.on_power_loss is OnPowerLoss.SILENT and not self.snapshot.powered
        )

    def set_health(self, bits: int) -> None:
        """The twin's conditions into register 79 (a followed meter's come with its image)."""
        if bits == self.health:
            return
        self.health = bits
        if self.follower is None:
            self.extra = {"twin_health": bits} if bits else {}
            self.image = self._build_image()
            self.endpoint.set_image(self.image)

    def _build_image(self) -> RegisterImage:
        return RegisterImage.build(
            self.snapshot,
            self.identity,
            word_order=self.spec.word_order,
            sunspec=self._sunspec,
            extra=self.extra,
        )

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
    return [(m.serial, m.nv_state()) for m in meters]


def start_warnings(meters: Iterable[LiveMeter]) -> list[str]:
    """What a start says once however many meters it concerns: a single-element model on
    a profile that loads L2 (the profile's own words, without their ``warning:``)."""
    found = (m.profile.model_warning(m.spec.model) for m in meters)
    return list(dict.fromkeys(w.removeprefix("warning: ") for w in found if w is not None))
