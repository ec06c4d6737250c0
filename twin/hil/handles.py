"""Handles on a running twin for tests: a meter, a fleet, a load.

Theory of operation
-------------------
:class:`MeterFleet` starts a :class:`~twin.runtime.twin.Twin` of ``n`` meters on a
free loopback port, on its own :class:`~twin.hil.runner.LoopThread`, with a manual
clock unless a speed is given: nothing moves until the test calls :meth:`advance`,
so every figure a test checks is deterministic. :class:`MeterTwin` is a fleet of one
that is also the handle of its meter. Each meter is a :class:`MeterHandle`: where it
answers (``url``, ``unit``, a Modbus ``client()``), what it reads (``snapshot()``,
fields named as the register map) and what it is told (``set_load``, ``inject``...).

Every command goes through :mod:`twin.control` (the one control path, the same as a
Modbus write, MQTT or HTTP): a refusal raises :class:`CommandFailed` with the
control's reason. Options not given here are :class:`~twin.runtime.config.TwinConfig`'s
(``profile``, ``model``, ``accuracy_seed``, ``word_order``, ``allow_writes``...).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from twin.control import run_command
from twin.core import Snapshot
from twin.errors import TwinError
from twin.hil.runner import LoopThread
from twin.modbus.client import MeterClient
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin


class CommandFailed(TwinError):
    """The twin refused a command (the reason is the control's) or cannot take one."""


@dataclass(frozen=True, slots=True)
class Load:
    """One element's inputs: rms volts, primary amperes, |PF| and lead/lag."""

    voltage_v: float = 120.0
    current_a: float = 0.0
    pf: float = 1.0
    leading: bool = False

    @property
    def power_w(self) -> float:
        return self.voltage_v * self.current_a * self.pf

    def as_body(self) -> dict[str, object]:
        return {
            "voltage_v": self.voltage_v,
            "current_a": self.current_a,
            "pf": self.pf,
            "leading": self.leading,
        }


LoadLike = Load | Mapping[str, object] | None


def _load_body(load: LoadLike) -> dict[str, object] | None:
    if load is None:
        return None
    return load.as_body() if isinstance(load, Load) else dict(load)


class MeterHandle:
    """One meter of a running fleet."""

    def __init__(self, fleet: MeterFleet, serial: str, unit: int) -> None:
        self.fleet = fleet
        self.serial = serial
        self.unit = unit

    @property
    def host(self) -> str:
        return self.fleet.host

    @property
    def port(self) -> int:
        return self.fleet.port

    @property
    def url(self) -> str:
        """``modbus://host:port?unit=N``: the form ``pytest hil_tests --target`` takes."""
        return f"modbus://{self.host}:{self.port}?unit={self.unit}"

    def client(self, timeout_s: float = 2.0) -> MeterClient:
        """A Modbus client for this meter (``async with meter.client() as c: ...``)."""
        return MeterClient(self.host, self.port, self.unit, timeout_s=timeout_s)

    def snapshot(self) -> Snapshot:
        """Every register of the meter now (field names = register map names)."""
        return self.fleet.snapshot(self.serial)

    def command(self, name: str, body: Mapping[str, object] | None = None) -> None:
        """Run a :mod:`twin.control` command on this meter; raises :class:`CommandFailed`."""
        self.fleet.command(name, body, serial=self.serial)

    def set_load(
        self, l1: LoadLike = None, l2: LoadLike = None, for_s: float | None = None
    ) -> None:
        """Override the profile's inputs (None: that line's profile value)."""
        body = {"l1": _load_body(l1), "l2": _load_body(l2), "for_s": for_s}
        self.command("set_load", body)

    def clear_load(self) -> None:
        """Back to the profile."""
        self.command("clear_load", {})

    def inject(self, kind: str, **params: object) -> None:
        """Inject a meter error (``"memory"``, ``"calibration"``, ...)."""
        self.command("inject_error", {"kind": kind, **params})

    def clear_error(self, kind: str) -> None:
        self.command("clear_error", {"kind": kind})


class MeterFleet:
    """``n`` meters on one free port (unit ids ``unit``..), manual clock by default."""

    def __init__(self, meters: int = 1, *, speed: float | None = None, **options: Any) -> None:
        for reserved in ("port", "meters", "speed", "fleet", "state_dir"):
            if reserved in options:
                raise TypeError(f"{reserved}= is chosen by the fixture; expected it not given")
        # The test drives its own twin: commands are on unless the test turns them off.
        options.setdefault("allow_writes", True)
        self.config = TwinConfig(port=0, speed=speed, meters=meters, **options)
        self._loop: LoopThread | None = None
        self._twin: Twin | None = None
        self.meters: list[MeterHandle] = []

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Self:
        twin = Twin(self.config)
        loop = LoopThread()
        try:
            loop.run(twin.start)
        except BaseException:
            loop.close()
            raise
        self._loop, self._twin = loop, twin
        self.meters = [MeterHandle(self, m.serial, m.spec.unit) for m in twin.meters]
        return self

    def close(self) -> None:
        loop, twin = self._loop, self._twin
        self._loop = self._twin = None
        if loop is not None and twin is not None:
            try:
                loop.run(twin.stop)
            finally:
                loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _running(self) -> tuple[LoopThread, Twin]:
        if self._loop is None or self._twin is None:
            raise CommandFailed("the twin is not running; expected start() or a fixture")
        return self._loop, self._twin

    # ------------------------------------------------------------ the fleet

    def __len__(self) -> int:
        return len(self.meters)

    def __iter__(self) -> Iterator[MeterHandle]:
        return iter(self.meters)

    def __getitem__(self, index: int) -> MeterHandle:
        return self.meters[index]

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        return self._running()[1].port

    @property
    def meter_time_s(self) -> float:
        """Meter time stepped since the twin started."""
        loop, twin = self._running()
        return loop.call(lambda: twin.meter_time_s)

    def advance(self, seconds: float) -> None:
        """Step every meter by ``seconds`` of meter time (manual clock only)."""
        loop, twin = self._running()
        if self.config.speed is not None:
            raise CommandFailed(
                f"advance() needs the manual clock; this twin runs at speed {self.config.speed:g}"
            )
        loop.call(lambda: twin.step(seconds))

    def snapshot(self, serial: str) -> Snapshot:
        loop, twin = self._running()

        def find() -> Snapshot:
            for meter in twin.meters:
                if meter.serial == serial:
                    return meter.snapshot
            raise CommandFailed(f"no meter with serial {serial!r} in this fleet")

        return loop.call(find)

    def command(
        self, name: str, body: Mapping[str, object] | None = None, *, serial: str | None = None
    ) -> None:
        """Run a control command on one meter (``serial``) or on every meter (None)."""
        loop, twin = self._running()
        result = loop.call(lambda: run_command(twin, name, body, serial=serial))
        if not result.ok:
            raise CommandFailed(f"{name} refused: {result.error}")

    def add_fault(self, spec: str | Mapping[str, Any], *, unit: int | None = None) -> int:
        """Arm a wire fault (``"delay:ms=50"`` or a mapping, as fleet files take); its id."""
        loop, twin = self._running()
        return loop.call(lambda: twin.hooks.add_fault(spec, unit=unit))

    def clear_faults(self) -> None:
        loop, twin = self._running()
        loop.call(twin.hooks.clear_faults)


class MeterTwin(MeterFleet, MeterHandle):
    """A fleet of one that is also its meter's handle: ``with MeterTwin() as m: ...``."""

    def __init__(self, *, speed: float | None = None, **options: Any) -> None:
        MeterFleet.__init__(self, 1, speed=speed, **options)
        MeterHandle.__init__(self, self, self.config.serial_number, self.config.unit)

    def snapshot(self, serial: str | None = None) -> Snapshot:
        return MeterFleet.snapshot(self, self.serial if serial is None else serial)

    def command(
        self, name: str, body: Mapping[str, object] | None = None, *, serial: str | None = None
    ) -> None:
        MeterFleet.command(self, name, body, serial=self.serial if serial is None else serial)
