"""What the physical meter should have registered: the model of the load the rig applies.

Theory of operation
-------------------
A :class:`Reference` answers "how much energy (and apparent energy) had the true
load delivered at time t?" on mirror time, for any t inside its history.

:class:`ProfileReference` is the twin's own metrology, never a second one: an ideal
core of the mirrored model, driven over the profile the rig applies by
:func:`twin.drive.drive` (the one stepping loop), with per-sample registration. Its
cumulative energy is kept at sample boundaries for ``history_s`` and read between
them assuming constant power within a sample, as the core places its own pulse
edges. The apparent energy (sum of V x I of the metered elements) gives the
window's power factor for the class limit; it is a property of the load, read from
the same sample blocks the core measured. ``uncertainty_pct`` is the rig's stated
accuracy in applying the profile (0 when a twin plays it).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import numpy as np

from twin.core import (
    AccuracyConfig,
    MeterConfig,
    MeterCore,
    MeterModel,
    Registration,
    SampleBlock,
)
from twin.drive import drive
from twin.loadprofile import Profile, Sampler
from twin.units import UJ_PER_WH

#: How far back a reference remembers (an edge known only within an outage this long
#: still gets its energy interval; a longer one starts a new cross-check window).
HISTORY_S: Final = 86_400.0
#: Samples per core call while catching up.
MAX_BLOCK: Final = 86_400


class Reference(Protocol):
    """Cumulative energy of the true load on mirror time."""

    @property
    def uncertainty_pct(self) -> float: ...

    @property
    def persistent(self) -> bool:
        """True when its energies on mirror time are the same after a mirror restart
        (a window then continues across it)."""
        ...

    def ready(self, t_s: float) -> bool:
        """Whether :meth:`mark_energy` can answer up to ``t_s`` (a mark waits until then)."""
        ...

    def mark_energy(self, lo_s: float, hi_s: float) -> tuple[float, float, float] | None:
        """For an edge known in [lo_s, hi_s]: (lowest Wh at lo_s, highest Wh at hi_s, VAh
        at hi_s), or None outside the reference's history."""
        ...

    async def start(self, on_update: Callable[[], None]) -> None:
        """Start (``on_update`` is called when it can answer further)."""
        ...

    async def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Chunk:
    t0_s: float
    dt_s: float
    energy_wh: np.ndarray  # cumulative at each sample boundary (n + 1 values)
    apparent_vah: np.ndarray

    @property
    def end_s(self) -> float:
        return self.t0_s + float(self.energy_wh.shape[0] - 1) * self.dt_s

    def at(self, t_s: float) -> tuple[float, float]:
        x = (t_s - self.t0_s) / self.dt_s
        k = min(max(0, math.floor(x)), self.energy_wh.shape[0] - 2)
        frac = x - k
        e, s = self.energy_wh, self.apparent_vah
        return (
            float(e[k] + frac * (e[k + 1] - e[k])),
            float(s[k] + frac * (s[k + 1] - s[k])),
        )


class _TapSampler(Sampler):
    """The profile's sampler, keeping each block the core measured (for apparent energy)."""

    def __init__(self, profile: Profile, seed: int) -> None:
        super().__init__(profile.spec, seed)
        self.blocks: list[SampleBlock] = []

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        built = super().block(t0_s, dt_s, n)
        self.blocks.append(built)
        return built


class ProfileReference:
    """An ideal core of ``model`` playing ``profile`` from mirror time 0 (+ ``offset_s``)."""

    def __init__(
        self,
        profile: Profile,
        model: MeterModel,
        *,
        seed: int | None = None,
        sample_s: float = 1.0,
        offset_s: float = 0.0,
        uncertainty_pct: float = 0.0,
        history_s: float = HISTORY_S,
    ) -> None:
        if not (math.isfinite(uncertainty_pct) and uncertainty_pct >= 0):
            raise ValueError(f"uncertainty_pct: {uncertainty_pct!r}; expected >= 0")
        self._uncertainty_pct = uncertainty_pct
        self._sampler = _TapSampler(profile, profile.spec.seed if seed is None else seed)
        self._core = MeterCore(
            MeterConfig(model=model, accuracy=AccuracyConfig(seed=None)),
            emit_edges=False,
            emit_series=True,
        )
        self._elements = model.elements
        self._sample_s = sample_s
        self._offset_s = offset_s
        self._history_s = history_s
        self._done = 0  # samples driven
        self._energy_wh = 0.0
        self._apparent_vah = 0.0
        self._chunks: deque[_Chunk] = deque()

    @property
    def uncertainty_pct(self) -> float:
        return self._uncertainty_pct

    @property
    def persistent(self) -> bool:
        return True  # the profile is replayed from mirror time 0 after a restart

    def ready(self, t_s: float) -> bool:
        self.advance_to(t_s)
        return True

    def mark_energy(self, lo_s: float, hi_s: float) -> tuple[float, float, float] | None:
        lo, hi = self.energy_at(lo_s), self.energy_at(hi_s)
        if lo is None or hi is None:
            return None
        return lo[0], hi[0], hi[1]

    async def start(self, on_update: Callable[[], None]) -> None:
        return None

    async def stop(self) -> None:
        return None

    @property
    def time_s(self) -> float:
        """Mirror time the reference has been driven to."""
        return self._done * self._sample_s

    def advance_to(self, t_s: float) -> None:
        n = math.ceil(t_s / self._sample_s - 1e-9) - self._done
        if n <= 0:
            return
        t0 = self._offset_s + self._done * self._sample_s
        for events in drive(self._core, self._sampler, t0, self._sample_s, n, MAX_BLOCK):
            regs = [ev for ev in events if isinstance(ev, Registration)]
            blocks, self._sampler.blocks = self._sampler.blocks, []
            for reg, block in zip(regs, blocks, strict=True):
                self._add(reg, block)
        self._done += n
        horizon = self.time_s - self._history_s
        while len(self._chunks) > 1 and self._chunks[0].end_s < horizon:
            self._chunks.popleft()

    def _add(self, reg: Registration, block: SampleBlock) -> None:
        els = self._elements
        volt_amps = (block.voltage_v[:els] * block.current_a[:els]).sum(axis=0)
        energy = np.concatenate(([0.0], np.cumsum(reg.delivered_uj) / UJ_PER_WH))
        apparent = np.concatenate(([0.0], np.cumsum(volt_amps) * reg.dt_s / 3600.0))
        chunk = _Chunk(
            reg.time0_s - self._offset_s,
            reg.dt_s,
            energy + self._energy_wh,
            apparent + self._apparent_vah,
        )
        self._energy_wh = float(chunk.energy_wh[-1])
        self._apparent_vah = float(chunk.apparent_vah[-1])
        self._chunks.append(chunk)

    def energy_at(self, t_s: float) -> tuple[float, float] | None:
        chunks = self._chunks
        if not chunks or t_s < chunks[0].t0_s or t_s > chunks[-1].end_s:
            return None
        i = bisect.bisect_right(chunks, t_s, key=lambda c: c.t0_s) - 1
        return chunks[max(0, i)].at(t_s)
