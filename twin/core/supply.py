"""The meter's own power supply: thresholds with hysteresis and a hold-up time.

The Mini Meter is self-powered from its voltage inputs (guide: 102-138 V L-N).
Per sample the supply is the highest line voltage of the meter's elements, and it
falls in one of three bands:

- at or above the power-up threshold (102 V by default): the meter is powered;
- below the power-down threshold (96 V by default): a dip. The supply capacitor
  keeps the meter running for the hold-up time (100 ms by default); a sample whose
  end lies more than the hold-up time after the dip began is unpowered, so a dip
  no longer than the hold-up never powers the meter down;
- in between: the meter keeps the state it had (hysteresis), so a supply wavering
  around 102 V does not chatter. A powered meter there runs with the
  under-voltage status bit set (see ``status``).

The state carried from one block to the next (powered, and how long the current
dip has lasted) makes the result independent of how samples are split into blocks.
Thresholds and hold-up come from the model configuration (``SupplyConfig``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from twin.core.models import SupplyConfig
from twin.core.samples import BoolArray, FloatArray


@dataclass(slots=True)
class SupplyState:
    """What the supply remembers between blocks."""

    config: SupplyConfig
    powered: bool = False
    dip_us: int = 0  # how long the supply has been below power-down, up to now

    def run_lines(
        self, voltage_v: FloatArray, dt_us: int, lowest_v: Sequence[float] | None = None
    ) -> BoolArray | None:
        """:meth:`run` on the highest of the lines' voltages (elements, n).

        A line that never drops below power-up keeps the meter powered throughout:
        its lowest voltage (``lowest_v`` per line when the caller has them, else one
        pass) proves that, without forming the per-sample maximum.
        """
        for k in range(voltage_v.shape[0]):  # (no row view to make when lowest_v is given)
            if lowest_v is not None:
                low_v = lowest_v[k]
            else:
                line = voltage_v[k]
                low_v = float(line[:1].min() if line.strides[0] == 0 else line.min())
            if low_v >= self.config.power_up_v:
                self.powered, self.dip_us = True, 0
                return None
        return self.run(voltage_v.max(axis=0), dt_us)

    def run(self, supply_v: FloatArray, dt_us: int) -> BoolArray | None:
        """Powered state per sample, None when powered at every sample (the usual
        block: no array to make, and none for the caller to search); updates the
        carried state to the block's end."""
        cfg = self.config
        n = supply_v.shape[0]
        high = supply_v >= cfg.power_up_v
        if high.all():  # the usual case: no dip, no hysteresis band
            self.powered, self.dip_us = True, 0
            return None
        low = supply_v < cfg.power_down_v
        # Index within the run of consecutive low samples (the first run may carry
        # the dip time of the previous block).
        idx = np.arange(n)
        starts = np.where(low & ~np.concatenate(([False], low[:-1])), idx, 0)
        run_start = np.maximum.accumulate(starts)
        first_run = run_start == 0
        if low[0] and self.dip_us:
            carried = np.where(first_run, self.dip_us, 0)
        else:
            carried = np.zeros(n, np.int64)
        end_us = carried + (idx - run_start + 1) * dt_us
        dead = low & (end_us > cfg.hold_up_us)
        # Forward fill: high powers up, dead powers down, anything else keeps the state.
        decided = high | dead
        last = np.maximum.accumulate(np.where(decided, idx, -1))
        powered = np.where(last >= 0, high[np.maximum(last, 0)], self.powered)
        self.powered = bool(powered[-1])
        self.dip_us = int(end_us[-1]) if low[-1] else 0
        return np.asarray(powered, dtype=np.bool_)
