"""Wiring as phasors: what each element measures from the service and its CT.

Each line L of the service has a voltage V_L at angle theta_L (120/240 V split
phase: 0 and 180 degrees; two phases of a 120/208 V wye: 0 and 120 degrees) and
carries the current of its load, I_L lagging V_L by the load angle phi_L
(``cos_phi``, ``leading``). Element k measures its own line's voltage V_k and the
current of the conductor its CT is on, line c, reversed if the CT is backwards:

    delta_k = theta_k - (theta_c - phi_c) (+ 180 degrees if reversed)
    P_k = V_k * I_c * cos(delta_k)        Q_k = V_k * I_c * sin(delta_k)

so a CT on the wrong phase of a split-phase service reads the other line's load
with its sign flipped (20 A on L1 and 5 A on L2 at 120 V, CTs swapped: -600 W and
-2400 W), on a wye it reads it 120 degrees off, and a reversed CT flips both P and
Q, and with Q the lead/lag flag (leading when Q < 0). Per sample only cos(delta)
is needed (for P and |PF|); it is formed by products of per-block constants with
the inputs, with no trigonometry per sample, so one block of N samples gives
exactly what N blocks of one give. Correct wiring skips all of it.
"""

from __future__ import annotations

import functools
import math
from enum import Enum

import numpy as np

from twin.core.samples import SPLIT_PHASE_DEG, BoolArray, FloatArray, SampleBlock

_KEPT_ANGLES = 16  # a service has two line angles: their differences, kept (read per block)


class Service(Enum):
    """The services the guide's "1 or 2 phase, 3 wire" covers: line voltage angles."""

    SPLIT_PHASE_120_240 = SPLIT_PHASE_DEG
    WYE_120_208 = (0.0, 120.0)

    @property
    def line_angle_deg(self) -> tuple[float, float]:
        angles: tuple[float, float] = self.value
        return angles


@functools.lru_cache(maxsize=_KEPT_ANGLES)
def cos_sin_deg(angle_deg: float) -> tuple[float, float]:
    """cos and sin of an angle in degrees, exact at multiples of 90 degrees."""
    quarter, rest = divmod(angle_deg % 360.0, 90.0)
    if rest == 0.0:
        return ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))[int(quarter)]
    rad = math.radians(angle_deg)
    return math.cos(rad), math.sin(rad)


def _sin_phi(cos_phi: FloatArray, leading: BoolArray) -> FloatArray:
    """sin of the load angle: positive when the current lags, negative when it leads."""
    mag = np.sqrt(np.maximum(1.0 - cos_phi * cos_phi, 0.0))
    return np.asarray(np.where(leading, -mag, mag), dtype=np.float64)


def element_inputs(block: SampleBlock, elements: int) -> tuple[FloatArray, FloatArray]:
    """(current each CT sees, cos(delta)) per element, shape (els, n)."""
    amps_line, cos_line = block.current_a, block.cos_phi
    if block.straight:  # the lines' own arrays (no view to make for two elements)
        if elements == amps_line.shape[0]:
            return amps_line, cos_line
        return amps_line[:elements], cos_line[:elements]
    m = amps_line.shape[1]
    own = np.arange(elements)[:, None]
    lines = own if block.ct_line is None else block.ct_line[:elements]
    idx = np.broadcast_to(lines, (elements, m))
    amps = np.take_along_axis(amps_line, idx, axis=0)
    cos_l = np.take_along_axis(cos_line, idx, axis=0)
    pf = cos_l
    if block.ct_line is not None:
        wrong = idx != own
        if wrong.any():
            cos_a, sin_a = _rotation(block, elements)
            if np.any(sin_a):
                sin_l = _sin_phi(cos_l, np.take_along_axis(block.leading, idx, axis=0))
                turned = cos_a * cos_l - sin_a * sin_l
            else:
                turned = cos_a * cos_l
            pf = np.where(wrong, turned, cos_l)
    if block.ct_reversed is not None:
        pf = np.where(block.ct_reversed[:elements], -pf, pf)
    return amps, pf


def _rotation(block: SampleBlock, elements: int) -> tuple[FloatArray, FloatArray]:
    """cos and sin of theta_k - theta_other per element, shape (els, 1)."""
    t1, t2 = block.line_angle_deg
    pairs = [cos_sin_deg(t1 - t2), cos_sin_deg(t2 - t1)][:elements]
    arr = np.array(pairs, np.float64)
    return arr[:, :1], arr[:, 1:]


def element_at(block: SampleBlock, k: int, i: int) -> tuple[float, float, bool]:
    """(current seen, cos(delta), leading) of element k at sample i, for the readings."""
    # .item: the value as a Python float (or int, bool) at once, with no numpy scalar.
    if block.ct_line is None and block.ct_reversed is None:  # correct wiring: its own line
        amps, cos_l = float(block.current_a.item(k, i)), float(block.cos_phi.item(k, i))
        return amps, cos_l, bool(block.leading.item(k, i))
    line = k if block.ct_line is None else int(block.ct_line.item(k, i))
    reversed_ = block.ct_reversed is not None and bool(block.ct_reversed.item(k, i))
    amps, cos_l = float(block.current_a.item(line, i)), float(block.cos_phi.item(line, i))
    lead_l = bool(block.leading.item(line, i))
    if line == k and not reversed_:
        return amps, cos_l, lead_l
    sin_l = math.sqrt(max(1.0 - cos_l * cos_l, 0.0)) * (-1.0 if lead_l else 1.0)
    t = block.line_angle_deg
    cos_a, sin_a = cos_sin_deg(t[k] - t[line])
    cos_d = cos_a * cos_l - sin_a * sin_l
    sin_d = sin_a * cos_l + cos_a * sin_l
    if reversed_:
        cos_d, sin_d = -cos_d, -sin_d
    # Exactly in phase or opposite (sin 0): keep the load's own flag, as the meter
    # cannot tell; otherwise the sign of Q decides.
    leading = lead_l if sin_d == 0.0 else sin_d < 0.0
    return amps, cos_d, leading


def line_to_line_v(v1: float, v2: float, line_angle_deg: tuple[float, float]) -> float:
    """|V1 - V2| from the lines' phasors (240 V split phase, 208 V wye at 120 V)."""
    t1, t2 = line_angle_deg
    cos_d, _ = cos_sin_deg(t1 - t2)
    return math.sqrt(max(v1 * v1 + v2 * v2 - 2.0 * v1 * v2 * cos_d, 0.0))
