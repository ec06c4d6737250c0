"""The meters of a live twin: one :class:`LiveMeter` per meter, samplers shared.

Theory of operation
-------------------
A twin always runs a fleet (a single meter is a fleet of one). Each
:class:`LiveMeter` owns one meter's core, its register image and the endpoint the
Modbus servers answer from, and steps through :func:`twin.drive.drive`, the one
loop every caller shares. After a step that moved the meter, the image is rebuilt
once and handed to the endpoint; requests never build anything.

Meters that play the same profile with the same noise (a profile without noise,
or the same seed) get the same :class:`SharedSampler`: it remembers the last block
it built, so when the fleet steps together the first meter builds the block and
the others reuse it (a sampler is pure and a core never writes to its block). That
halves a small fleet step's cost; the per-call cost of ``MeterCore.advance``
(~0.1 ms) is what remains, which is why the runtime yields to the event loop
between meters while it steps a large fleet.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from twin.core import (
    AccuracyConfig,
    Command,
    Event,
    MeterConfig,
    MeterCore,
    NvState,
    SampleBlock,
    Snapshot,
)
from twin.drive import drive
from twin.errors import ConfigError
from twin.loadprofile import Profile, Sampler, load_profile
from twin.modbus.endpoint import CACHE_MAX, FLEET_CACHE_BUDGET, MeterEndpoint
from twin.registers import (
    Identity,
    RegisterImage,
    WordOrder,
    decode_write,
    device_identification,
)
from twin.runtime.fleet import FleetSpec, MeterSpec

MAX_BLOCK = 86_400  # samples per core call while catching up

MeterListener = Callable[["LiveMeter", list[Event]], None]


class SharedSampler(Sampler):
    """A sampler that hands the same block to every meter stepping the same span."""

    def __init__(self, profile: Profile, seed: int) -> None:
        super().__init__(profile.spec, seed)
        self._key: tuple[float, float, int] | None = None
        self._block: SampleBlock | None = None

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        key = (t0_s, dt_s, n)
        if key != self._key or self._block is None:
            self._block = super().block(t0_s, dt_s, n)
            self._key = key
        return self._block


class LiveMeter:
    """One meter of the twin: core, sampler, image, endpoint."""

    def __init__(
        self,
        spec: MeterSpec,
        config: MeterConfig,
        sampler: Sampler,
        nv: NvState | None,
        *,
        sunspec: bool,
        allow_energy_reset: bool,
        allow_writes: bool,
        on_events: Callable[[LiveMeter, list[Event]], None],
        fleet_size: int = 1,
    ) -> None:
        self.spec = spec
        self.config = config
        self.sampler = sampler
        self.restored = nv is not None
        self.core = MeterCore(config, nv=nv)
        self.identity = Identity.from_config(config, unit_id=spec.unit)
        self._word_order = WordOrder.LITTLE if spec.word_order == "little" else WordOrder.BIG
        self._sunspec = sunspec
        self._allow_energy_reset = allow_energy_reset
        self._on_events = on_events
        self.snapshot: Snapshot = self.core.snapshot()
        self._snapshot_repr = repr(self.snapshot)
        self.image = self._build_image()
        self.endpoint = MeterEndpoint(
            self.image,
            device_identification(self.identity),
            self._write if allow_writes else None,
            cache_max=max(64, min(CACHE_MAX, FLEET_CACHE_BUDGET // fleet_size)),
        )
        self._update_silence()

    @property
    def serial(self) -> str:
        return self.spec.serial

    def step(self, t0_s: float, dt_s: float, n: int) -> None:
        """Advance ``n`` samples from profile time ``t0_s``, then refresh the image."""
        for events in drive(self.core, self.sampler, t0_s, dt_s, n, MAX_BLOCK):
            if events:
                self._on_events(self, events)
        self.refresh()

    def apply(self, command: Command) -> list[Event]:
        events = self.core.apply(command)
        if events:
            self._on_events(self, events)
        self.refresh()
        return events

    def refresh(self) -> None:
        snap = self.core.snapshot()
        # repr compares NaN fields as equal, unlike ==; an unchanged meter keeps its image
        text = repr(snap)
        if text != self._snapshot_repr:
            self.snapshot, self._snapshot_repr = snap, text
            self.image = self._build_image()
            self.endpoint.set_image(self.image)
            self._update_silence()

    def _update_silence(self) -> None:
        self.endpoint.silent = self.spec.on_power_loss == "silent" and not self.snapshot.powered

    def _build_image(self) -> RegisterImage:
        return RegisterImage.build(
            self.snapshot, self.identity, word_order=self._word_order, sunspec=self._sunspec
        )

    def _write(self, address: int, values: list[int]) -> None:
        """Block C write from the wire: decode (raises the Modbus exception) then act."""
        # The image checks a demand write against the other block C values as they are.
        command = decode_write(
            address,
            values,
            energy_reset_unlocked=self._allow_energy_reset,
            current=self.image.config,
        )
        self.apply(command)


def meter_configs(fleet: FleetSpec, accuracy_seed: int | None) -> list[MeterConfig]:
    """Each meter's core configuration (an error curve per meter when seeded)."""
    out = []
    for i, spec in enumerate(fleet.meters):
        try:
            out.append(
                MeterConfig(
                    model=spec.model,
                    serial_number=spec.serial,
                    accuracy=AccuracyConfig(
                        seed=None if accuracy_seed is None else accuracy_seed + i
                    ),
                )
            )
        except ValueError as exc:
            raise ConfigError(f"meter {spec.serial} (unit {spec.unit}): {exc}") from None
    return out


def samplers(fleet: FleetSpec) -> list[Sampler]:
    """One sampler per meter, shared between meters whose inputs are identical.

    A meter without an explicit seed plays its profile's seed plus its position in
    the fleet, so meters on a noisy profile differ from one another.
    """
    profiles: dict[str, Profile] = {}
    shared: dict[tuple[str, Any], SharedSampler] = {}
    out: list[Sampler] = []
    for i, spec in enumerate(fleet.meters):
        profile = profiles.get(spec.profile)
        if profile is None:
            profile = profiles[spec.profile] = load_profile(spec.profile)
        seed = profile.spec.seed + i if spec.seed is None else spec.seed
        key = (spec.profile, seed if profile.spec.noise else None)
        sampler = shared.get(key)
        if sampler is None:
            sampler = shared[key] = SharedSampler(profile, seed)
        out.append(sampler)
    return out


def nv_items(meters: Iterable[LiveMeter]) -> list[tuple[str, NvState]]:
    return [(m.serial, m.core.nv_state()) for m in meters]
