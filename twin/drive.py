"""Driving a meter core from a profile sampler: THE one loop shared by every caller.

The live runtime (a few samples per tick), batch simulation (a day per block) and
the tests all call :func:`drive`. It advances the core over ``n`` samples starting
at profile time ``t0_s``, in blocks of at most ``max_block`` samples. Command events
of the profile (error inject/clear, demand reset, clear pulse counts) are applied
with ``core.apply`` between samples: a command at time ``tc`` is applied before
the first sample starting at or after ``tc``. Each block's events (the command
events included, in time order) are yielded once the block is done.

Sample times are integer microseconds (``t0 + i*dt``), like the sampler's, so the
split into blocks never changes what the core sees.

:func:`register` runs a fresh, ideal meter over a profile with this loop and reports
what it registered (``minimeter profiles show``): the figures are the core's own,
never a second computation of energy beside it. The sampler's blocks carry the
profile's service and CT placement; the profile's registration mode and demand
settings (``profile.meter_settings``) and the model are the caller's to pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, TypeVar

from twin.core import (
    AccuracyConfig,
    Command,
    MeterConfig,
    MeterCore,
    MeterModel,
    Registration,
    RegistrationMode,
    SampleBlock,
)
from twin.loadprofile import MeterSettings, Sampler
from twin.units import uj_to_wh

#: The meter :func:`register` uses: dual element, so both lines register.
REGISTER_MODEL = "MMD-200A"


E = TypeVar("E")


class Drivable(Protocol[E]):
    """A :class:`MeterCore`, or meters that step the same blocks together (the runtime's
    groups, whose events say which meter they belong to)."""

    def advance(self, block: SampleBlock) -> list[E]: ...

    def apply(self, command: Command) -> list[E]: ...


def drive(
    core: Drivable[E],
    sampler: Sampler,
    t0_s: float,
    dt_s: float,
    n: int,
    max_block: int = 86_400,
) -> Iterator[list[E]]:
    """Advance ``core`` over ``n`` samples of ``sampler`` from ``t0_s``; yield events per block."""
    if max_block < 1:
        raise ValueError(f"max_block: {max_block} invalid; expected >= 1")
    t0_us = round(t0_s * 1e6)
    dt_us = round(dt_s * 1e6)
    if dt_us < 1:
        raise ValueError(f"dt_s: {dt_s!r} invalid; expected at least 1e-06 s")
    done = 0
    while done < n:
        m = min(max_block, n - done)
        start_us = t0_us + done * dt_us
        events: list[E] = []
        j = 0
        for tc_s, command in sampler.commands_between(start_us / 1e6, (start_us + m * dt_us) / 1e6):
            # First sample starting at or after the command's time.
            k = min(m, -(-(round(tc_s * 1e6) - start_us) // dt_us))
            if k > j:
                events += core.advance(sampler.block((start_us + j * dt_us) / 1e6, dt_s, k - j))
                j = k
            events += core.apply(command)
        if j < m:
            events += core.advance(sampler.block((start_us + j * dt_us) / 1e6, dt_s, m - j))
        done += m
        yield events


@dataclass(frozen=True, slots=True)
class Registered:
    """What an ideal meter registered over a run."""

    l1_wh: float  # net: delivered minus received on L1 (negative when it exports)
    l2_wh: float
    delivered_wh: float  # the energy register (sum_then_clamp: max(P1 + P2, 0) while powered)
    received_wh: float  # the received register (bidirectional mode; 0 otherwise)
    peak_w: float  # the largest measured P1 + P2 of any sample (0 if none above)
    registration_mode: RegistrationMode


def register(
    sampler: Sampler,
    t0_s: float,
    dt_s: float,
    n: int,
    max_block: int = 86_400,
    *,
    model: MeterModel | None = None,
    settings: MeterSettings | None = None,
) -> Registered:
    """Drive a fresh ideal meter (MMD-200A unless ``model``) over ``n`` samples.

    ``settings`` (a profile's choices) change the registration mode and demand from
    the defaults (sum_then_clamp). The core measures as it does live: nothing below
    the starting current, nothing while unpowered, energy in whole microjoules per
    sample. Raises ValueError (the core's words) for settings the core refuses.
    """
    config = MeterConfig(
        model=MeterModel.parse(REGISTER_MODEL) if model is None else model,
        registration_mode=RegistrationMode.SUM_THEN_CLAMP,
        accuracy=AccuracyConfig(seed=None),
    )
    if settings is not None:
        config = settings.apply(config)
    core = MeterCore(config, emit_edges=False, emit_series=True)
    peak_w = 0.0
    for events in drive(core, sampler, t0_s, dt_s, n, max_block):
        for ev in events:
            if isinstance(ev, Registration) and ev.power_w.size:
                peak_w = max(peak_w, float(ev.power_w.sum(axis=0).max()))
    nv = core.nv_state()
    return Registered(
        l1_wh=uj_to_wh(nv.energy_l1_uj - nv.energy_l1_received_uj),
        l2_wh=uj_to_wh(nv.energy_l2_uj - nv.energy_l2_received_uj),
        delivered_wh=uj_to_wh(nv.energy_delivered_uj),
        received_wh=uj_to_wh(nv.energy_received_uj),
        peak_w=peak_w,
        registration_mode=config.registration_mode,
    )
