"""What the MQTT publisher needs of a running twin, as Protocols.

`twin.mqtt` sits below `twin.runtime` (the runtime composes the publisher into the
twin), so it sees the twin only through :class:`TwinSource`; the runtime's Twin and
LiveMeter satisfy these structurally.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from twin.core import Event, MeterConfig, Snapshot


class MeterSource(Protocol):
    """What the publisher reads of a meter."""

    @property
    def serial(self) -> str: ...

    @property
    def snapshot(self) -> Snapshot: ...

    @property
    def config(self) -> MeterConfig: ...

    @property
    def extra(self) -> Mapping[str, float | int]:
        """Registers beyond the snapshot (a mirror's 70-78, twin_health 79); empty: defaults."""
        ...


class TwinSource(Protocol):
    """What the publisher needs of a running twin."""

    @property
    def meters(self) -> Sequence[MeterSource]: ...

    @property
    def meter_time_s(self) -> float: ...

    def subscribe(self, listener: Callable[[Any, list[Event]], None]) -> Callable[[], None]:
        """Call ``listener(meter, events)`` on the event loop; returns the unsubscribe."""
        ...
