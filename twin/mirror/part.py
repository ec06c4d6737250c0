"""The mirror as a part of a running twin: its meter follows a physical meter's pulses.

:func:`mirror_part` is one entry of the twin's parts, entered after the meters and
before the servers: a no-op while the twin's config has no ``mirror``; otherwise the
twin's one meter is *followed* (:meth:`FollowedMeter.follow`): its core stops, and
what it serves over Modbus (the same register map, ``source_mode`` 1, registers
70-78, status bits 14-15), on MQTT and HTTP is the :class:`~twin.mirror.Mirror`'s
snapshot and image. The meter's identity (model, serial, unit, word order) is the
twin's; the follow state is restored from the twin's durable store (demand and
maximum demand), and the meter's checkpoints save the mirror's state
(:meth:`Mirror.nv_state`). The twin is seen through :class:`MirrorTwin`, so this
package does not import the runtime.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from twin.core import MeterConfig, NvState, Snapshot
from twin.mirror.config import MirrorConfig
from twin.mirror.mirror import Mirror
from twin.registers import RegisterImage, WordOrder


class Follower(Protocol):
    """What a followed meter asks of what it follows."""

    def nv_state(self) -> NvState: ...


class MeterSpecView(Protocol):
    @property
    def unit(self) -> int: ...

    @property
    def word_order(self) -> WordOrder: ...


class FollowedMeter(Protocol):
    @property
    def serial(self) -> str: ...

    @property
    def spec(self) -> MeterSpecView: ...

    @property
    def config(self) -> MeterConfig: ...

    def follow(self, follower: Follower | None) -> None: ...

    def show(
        self, snapshot: Snapshot, image: RegisterImage, extra: Mapping[str, float | int]
    ) -> None: ...


class MirrorSettings(Protocol):
    @property
    def mirror(self) -> MirrorConfig | None: ...

    @property
    def state_dir(self) -> Path | None: ...

    @property
    def sunspec(self) -> bool: ...


class NvStore(Protocol):
    def load(self, serial: str) -> NvState | None: ...


class MirrorTwin(Protocol):
    mirror: Mirror | None

    @property
    def config(self) -> MirrorSettings: ...

    @property
    def meters(self) -> Sequence[FollowedMeter]: ...

    @property
    def store(self) -> NvStore | None: ...


@asynccontextmanager
async def mirror_part(twin: MirrorTwin) -> AsyncIterator[None]:
    base = twin.config.mirror
    if base is None:
        yield
        return
    meter = twin.meters[0]
    config = replace(
        base,
        model=meter.config.model.name,
        serial_number=meter.serial,
        unit=meter.spec.unit,
        word_order=meter.spec.word_order,
        sunspec=twin.config.sunspec,
        state_dir=twin.config.state_dir,
    )
    nv = twin.store.load(meter.serial) if twin.store is not None else None

    def show(mirror: Mirror) -> None:
        assert mirror.snapshot is not None and mirror.image is not None
        meter.show(mirror.snapshot, mirror.image, mirror.extra())

    async with Mirror(config, nv=nv) as mirror:
        meter.follow(mirror)
        mirror.listeners.append(show)
        show(mirror)
        twin.mirror = mirror
        try:
            yield
        finally:
            twin.mirror = None
            mirror.listeners.remove(show)
