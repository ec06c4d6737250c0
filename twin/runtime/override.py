"""A load override as a sampler: the core still receives SampleBlocks, one metrology.

Theory of operation
-------------------
``set_load`` (`twin.control`) replaces what the profile says one or both elements see
(voltage, current, power factor, leading) with fixed values, until a meter time or
until cleared. :class:`OverrideSampler` is the meter's profile sampler with that
overlay: it builds the profile's block (frequency, temperature, the other element and
the samples after the override ends stay the profile's), writes the override into
the samples that start before ``until_s``, and hands the core an ordinary, validated
:class:`~twin.core.SampleBlock`. Profile command events (errors, demand resets) go on
as the profile has them. Sample times are integer microseconds, as in the sampler, so
the override ends on the same sample however the stepping is split.
"""

from __future__ import annotations

import numpy as np

from twin.control import ElementLoad, SetLoad
from twin.core import BoolArray, FloatArray, SampleBlock
from twin.loadprofile import ProfileSpec, Sampler


class OverrideSampler(Sampler):
    """The profile of ``spec`` (seeded ``seed``) with ``load`` laid over it until
    ``until_s`` of profile time (None: for good)."""

    def __init__(self, spec: ProfileSpec, seed: int, load: SetLoad, until_s: float | None) -> None:
        super().__init__(spec, seed)
        self.load = load
        self.until_s = until_s

    def block(self, t0_s: float, dt_s: float, n: int) -> SampleBlock:
        base = super().block(t0_s, dt_s, n)
        k = self.overridden(t0_s, dt_s, n)
        if k == 0:
            return base
        voltage = np.array(base.voltage_v)  # writable copies of possibly broadcast views
        current = np.array(base.current_a)
        cos_phi = np.array(base.cos_phi)
        leading = np.array(base.leading)
        for row, element in enumerate((self.load.l1, self.load.l2)):
            if element is not None:
                _lay(element, row, k, voltage, current, cos_phi, leading)
        return SampleBlock.build(
            n,
            base.dt_s,
            voltage_v=voltage,
            current_a=current,
            cos_phi=cos_phi,
            leading=leading,
            frequency_hz=base.frequency_hz,
            temperature_c=base.temperature_c,
            # The override sets the lines' loads; the service and CTs stay the profile's.
            line_angle_deg=base.line_angle_deg,
            ct_line=(0, 1) if base.ct_line is None else base.ct_line,
            ct_reversed=False if base.ct_reversed is None else base.ct_reversed,
        )

    def overridden(self, t0_s: float, dt_s: float, n: int) -> int:
        """How many of the ``n`` samples from ``t0_s`` start before the override ends."""
        if self.until_s is None:
            return n
        t0_us, dt_us = round(t0_s * 1e6), round(dt_s * 1e6)
        left_us = round(self.until_s * 1e6) - t0_us
        return max(0, min(n, -(-left_us // dt_us)))


def _lay(
    element: ElementLoad,
    row: int,
    k: int,
    voltage: FloatArray,
    current: FloatArray,
    cos_phi: FloatArray,
    leading: BoolArray,
) -> None:
    voltage[row, :k] = element.voltage_v
    current[row, :k] = element.current_a
    cos_phi[row, :k] = element.pf
    leading[row, :k] = element.leading
