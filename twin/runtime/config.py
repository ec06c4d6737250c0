"""`TwinConfig`: everything `minimeter run` decides, validated once at the boundary.

Theory of operation
-------------------
The CLI (`twin.cli.run.config_from_args`), tests and HIL fixtures build one frozen
`TwinConfig`; `__post_init__` checks every option's range and raises `ConfigError`
naming the option (as the user typed it: ``--speed``, ``--unit``...) and what was
expected, so `twin.runtime.twin.Twin` never sees a bad value. It then resolves what is
served: ``--meters N`` on one port becomes a uniform `FleetSpec`, a fleet file is
taken as given (``--no-tcp`` drops its ports, a ``--serial`` line needs a fleet on one
port), and `resolved` holds that fleet and `meter` the first meter's `MeterConfig`.
Every meter's profile is loaded here (`profiles`, once per reference) and its
`MeterConfig` built (model, accuracy, and the settings chosen on the command line, in
the fleet file and in the profile: `twin.control.resolve`), so a bad profile or a
meter the core would refuse fails as a `ConfigError` at the boundary, before anything
listens.

Speeds are bounded by the sample rate a core can sustain: ``speed / sample_s`` at
most `MAX_SAMPLE_RATE` samples per wall second per meter (:func:`check_speed`, also
what a running twin's ``set_speed`` command is checked by).

A value object: it imports no live code (no servers, no meters, no pymodbus); reading
the profile files is its only IO.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from twin.control import MAX_SPEED, MeterChoices
from twin.core import DEFAULT_MODEL, MeterConfig
from twin.errors import ConfigError
from twin.http import HttpConfig
from twin.loadprofile import DEFAULT_PROFILE, Profile, load_profile
from twin.mirror import MirrorConfig
from twin.modbus import TCP_UNIT_ALIASES, UnknownUnit
from twin.modbus.faults import FaultSpec
from twin.modbus.security import TlsSettings
from twin.modbus.serial import SerialSettings
from twin.modbus.tcp import DEFAULT_IDLE_TIMEOUT_S
from twin.mqtt import MqttConfig
from twin.registers import WordOrder
from twin.runtime.fleet import (
    FleetSpec,
    OnPowerLoss,
    meter_configs,
    uniform_fleet,
    without_tcp,
)
from twin.runtime.shard import ShardSpec, shard_fleet
from twin.units import SEED_MAX, SEED_MIN, SEED_RANGE_TEXT

MAX_SAMPLE_RATE = 1e6  # speed / sample_s: samples per wall second per meter


def check_speed(
    speed: float, sample_s: float, *, option: str = "--speed", sample_option: str = "--sample"
) -> None:
    """Refuse a clock speed out of range or one whose sample rate no core sustains."""
    if not (math.isfinite(speed) and 0 < speed <= MAX_SPEED):
        raise ConfigError(f"{option} {speed}: expected a factor > 0 and <= {MAX_SPEED:g}")
    if speed / sample_s > MAX_SAMPLE_RATE:
        raise ConfigError(
            f"{option} {speed:g} with {sample_option} {sample_s:g}: "
            f"{speed / sample_s:.3g} samples per second per meter; expected "
            f"speed / sample at most {MAX_SAMPLE_RATE:g} (raise {sample_option} or lower "
            f"{option})"
        )


@dataclass(frozen=True, slots=True)
class TwinConfig:
    """Everything `minimeter run` decides, validated once."""

    profile: str = DEFAULT_PROFILE
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
    word_order: WordOrder = WordOrder.BIG
    sunspec: bool = True
    allow_writes: bool = False
    allow_energy_reset: bool = False
    serial: SerialSettings | None = None
    unknown_unit: UnknownUnit | None = None  # None: the fleet's (exception)
    on_power_loss: OnPowerLoss = OnPowerLoss.ANSWER
    faults: tuple[FaultSpec, ...] = ()
    fault_seed: int | None = None
    trace_path: Path | None = None
    max_connections: int = 256
    idle_timeout_s: float | None = DEFAULT_IDLE_TIMEOUT_S  # None: never
    http: HttpConfig | None = None  # --http: the JSON API, stream, /metrics, front panel
    unit_aliases: frozenset[int] = TCP_UNIT_ALIASES  # TCP unit ids a one-meter port answers
    tls: TlsSettings | None = None  # Modbus/TCP Security on every TCP port
    mirror: MirrorConfig | None = None  # `minimeter mirror`: the meter follows a physical one
    mqtt: MqttConfig | None = None  # None: no MQTT (twin.mqtt.config validates its own)
    # settings chosen on the command line: above a fleet file's and the profile's
    choices: MeterChoices | None = None
    shard: ShardSpec | None = None  # --shard I/N: serve only that shard of the fleet
    meter: MeterConfig = field(init=False)  # the first meter's (the single meter's)
    resolved: FleetSpec = field(init=False)  # the fleet actually served
    # the fleet's profiles, loaded once, by the reference the meters give
    profiles: Mapping[str, Profile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Enums for closed sets; their values ("little", "silent") are accepted too.
        object.__setattr__(self, "word_order", WordOrder(self.word_order))
        object.__setattr__(self, "on_power_loss", OnPowerLoss(self.on_power_loss))
        if self.unknown_unit is not None:
            object.__setattr__(self, "unknown_unit", UnknownUnit(self.unknown_unit))
        for option, seed in (
            ("--seed", self.seed),
            ("--accuracy-seed", self.accuracy_seed),
            ("--fault-seed", self.fault_seed),
        ):
            # The same range as `simulate --seed` and a fleet file's seeds.
            if seed is not None and not SEED_MIN <= seed <= SEED_MAX:
                raise ConfigError(f"{option} {seed}: out of range; expected {SEED_RANGE_TEXT}")
        if not 1 <= self.unit <= 247:
            raise ConfigError(f"--unit {self.unit}: expected a unit id 1..247")
        if self.port is not None and not 0 <= self.port <= 65535:
            raise ConfigError(f"--port {self.port}: expected 0..65535")
        if not 0.001 <= self.tick_s <= 10:
            raise ConfigError(f"tick_s {self.tick_s}: expected 0.001..10 s")
        if not 0.001 <= self.sample_s <= 3600:
            raise ConfigError(f"--sample {self.sample_s}: expected 0.001..3600 s")
        if self.speed is not None:
            check_speed(self.speed, self.sample_s)
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
        if self.mirror is not None and len(fleet.meters) != 1:
            raise ConfigError("a mirror follows one physical meter; expected a fleet of one")
        if self.unknown_unit is not None:
            fleet = FleetSpec(fleet.meters, unknown_unit=self.unknown_unit)
        if self.shard is not None:
            if self.mqtt is not None and self.mqtt.refuse_unknown:
                raise ConfigError(
                    "--mqtt-refuse-unknown with shards (--shard, --workers): every shard "
                    "would refuse the others' meters; expected one twin alone on its prefix"
                )
            fleet = shard_fleet(fleet, self.shard, source=f"--shard {self.shard}")
        refs = dict.fromkeys(m.profile for m in fleet.meters)  # each once, in fleet order
        profiles = {ref: load_profile(ref) for ref in refs}
        configs = meter_configs(fleet, self.accuracy_seed, self.choices, profiles)
        object.__setattr__(self, "profiles", profiles)
        if self.mqtt is not None:
            self.mqtt.check_serials(m.serial for m in fleet.meters)
        object.__setattr__(self, "resolved", fleet)
        object.__setattr__(self, "meter", configs[0])
