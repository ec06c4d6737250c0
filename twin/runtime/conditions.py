"""The twin's own health: its conditions watched, ``twin_health`` (register 79) kept current.

Theory of operation
-------------------
A :class:`HealthWatch` holds one probe per :class:`~twin.registers.TwinHealth` bit: a
function saying whether that condition holds now (the store failing, the MQTT broker
disconnected, a mirror's pulse source stale or reference down, the pulse sink failing,
the meters lagging behind the clock). :func:`health_part`, one of the twin's parts,
adds the twin's own probes and polls them every :data:`HEALTH_PERIOD_S` of wall time;
when the word changes it goes into every meter's register 79
(``LiveMeter.set_health``; a mirrored meter's through the mirror's image), from where
Modbus, the MQTT state and the HTTP API read it like any other register; the MQTT
publisher starts a round of states at once.

Polling, not callbacks: the conditions belong to parts that know nothing of each other
(a store saved from a worker thread, the MQTT task, a pulse sink driven by the CLI),
and reading six flags five times a second costs nothing. Each part logs its own
condition once when it starts and ends; this module adds no log lines. Something
outside the twin adds its probe with :meth:`HealthWatch.watch` (``minimeter run
--pulse-out`` does for its sink).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final, Protocol

from devices import cancel_and_wait
from twin.mirror import Mirror
from twin.mqtt import MqttPublisher
from twin.registers import TwinHealth, health_conditions

log = logging.getLogger(__name__)

#: Wall seconds between two looks at the conditions (the most a change waits to show).
HEALTH_PERIOD_S: Final = 0.2
#: Meters given the new word between two yields to the event loop (a big fleet).
_METERS_PER_YIELD: Final = 500

Probe = Callable[[], bool]


class HealthTarget(Protocol):
    """What takes the health word: a meter (its register 79) or a mirror."""

    def set_health(self, bits: int) -> None: ...


class HealthWatch:
    """The probes of a twin's conditions and the word they made last time."""

    def __init__(self) -> None:
        self._probes: dict[TwinHealth, list[Probe]] = {}
        self.bits = 0  # twin_health as the registers show it now

    def watch(self, flag: TwinHealth, probe: Probe) -> Callable[[], None]:
        """Let ``probe()`` set ``flag``; returns the function that removes the probe."""
        probes = self._probes.setdefault(flag, [])
        probes.append(probe)

        def unwatch() -> None:
            with contextlib.suppress(ValueError):
                probes.remove(probe)

        return unwatch

    def measure(self) -> int:
        """The word the probes make now (a flag is set when any of its probes says so)."""
        bits = 0
        for flag, probes in self._probes.items():
            if any(probe() for probe in probes):
                bits |= flag
        return bits

    @property
    def conditions(self) -> list[str]:
        """The names of the conditions in force (``store_failing`` ...)."""
        return health_conditions(self.bits)

    async def publish(self, bits: int, targets: Sequence[HealthTarget]) -> None:
        """Give every target the word ``bits``, yielding now and then in a big fleet."""
        self.bits = bits
        for i, target in enumerate(targets):
            target.set_health(bits)
            if i % _METERS_PER_YIELD == _METERS_PER_YIELD - 1:
                await asyncio.sleep(0)


class WatchedTwin(Protocol):
    """What the health part reads of a running twin (``twin.runtime.Twin`` fits)."""

    @property
    def health(self) -> HealthWatch: ...
    @property
    def meters(self) -> Sequence[HealthTarget]: ...
    @property
    def store_error(self) -> str | None: ...
    @property
    def mqtt(self) -> MqttPublisher | None: ...
    @property
    def mirror(self) -> Mirror | None: ...
    @property
    def lagging(self) -> bool: ...


def watch_twin(twin: WatchedTwin) -> list[Callable[[], None]]:
    """The twin's own probes; returns their removers."""
    watch = twin.health

    def reference_down() -> bool:
        return twin.mirror is not None and twin.mirror.reference_down

    return [
        watch.watch(TwinHealth.STORE_FAILING, lambda: twin.store_error is not None),
        watch.watch(
            TwinHealth.MQTT_DISCONNECTED, lambda: twin.mqtt is not None and not twin.mqtt.connected
        ),
        watch.watch(
            TwinHealth.PULSE_SOURCE_STALE, lambda: twin.mirror is not None and twin.mirror.stale
        ),
        watch.watch(TwinHealth.REFERENCE_DOWN, reference_down),
        watch.watch(TwinHealth.LAGGING, lambda: twin.lagging),
    ]


@asynccontextmanager
async def health_part(twin: WatchedTwin) -> AsyncIterator[None]:
    """Poll the twin's conditions while it runs; register 79 follows them."""
    removers = watch_twin(twin)

    async def poll() -> None:
        while True:
            try:
                bits, before = twin.health.measure(), twin.health.bits
            except Exception:  # a probe's bug must not freeze register 79 unsaid
                log.exception("twin health: a probe failed; the word is kept as it was")
                await asyncio.sleep(1.0)  # one line a second at most
                continue
            if bits != before:
                targets: list[HealthTarget] = list(twin.meters)
                if twin.mirror is not None:
                    targets.append(twin.mirror)
                await twin.health.publish(bits, targets)
                # The states carry it at once (a reconnection publishes them anyway).
                if twin.mqtt is not None and (bits ^ before) & ~TwinHealth.MQTT_DISCONNECTED:
                    twin.mqtt.republish()
            await asyncio.sleep(HEALTH_PERIOD_S)

    task = asyncio.create_task(poll(), name="twin-health")
    try:
        yield
    finally:
        await cancel_and_wait([task])
        for remove in removers:
            remove()
