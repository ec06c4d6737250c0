"""Every limit of the meter and of its inputs, each defined once.

Two kinds of limit live here. Ratings come from the Leviton install guide (Table 1)
and say when the meter raises a status bit: supply 102-138 V L-N, 50-60 Hz, PF
0.5-1.0, -30..+70 °C. Input bounds say what a sample may carry at all: values
outside them are bad input (a profile or a caller's mistake), refused with a
message, not an error condition of the meter. Profile validation, the load
sampler and the core all import these names from ``twin.core``.
"""

from __future__ import annotations

from typing import Final

# --------------------------------------------------------------- ratings
#: Supply range L1 or L2 to neutral (guide Table 1).
SUPPLY_MIN_V: Final = 102.0
SUPPLY_MAX_V: Final = 138.0
#: Below this a line counts as missing rather than low (a design choice).
VOLTAGE_MISSING_BELOW_V: Final = 60.0
#: Supply thresholds with hysteresis: the meter powers up when some line reaches
#: SUPPLY_POWER_UP_V (the guide's operating minimum) and powers down only when every
#: line has stayed below SUPPLY_POWER_DOWN_V for longer than the hold-up time. The
#: power-down threshold is 80 % of the 120 V nominal, the low-voltage detection
#: threshold of Leviton's Series 3000 meters (meter-domain.md §1.5); between the two
#: the meter runs with the under-voltage status bit set.
SUPPLY_POWER_UP_V: Final = SUPPLY_MIN_V
SUPPLY_POWER_DOWN_V: Final = 96.0
#: The supply capacitor rides through dips up to this long (a design choice).
SUPPLY_HOLD_UP_S: Final = 0.1
#: Rated line frequencies (guide: 50-60 Hz). The meter takes the nearer of the two as
#: the system's nominal and raises the frequency error (code 8) when the frequency is
#: more than FREQUENCY_TOLERANCE_PCT from it: a design choice after the ±2 %
#: frequency-variation range of IEC 62053-21's influence tests (49-51 Hz, 58.8-61.2 Hz).
RATED_FREQUENCIES_HZ: Final = (50.0, 60.0)
FREQUENCY_TOLERANCE_PCT: Final = 2.0
#: Operating temperature (guide Table 1).
TEMPERATURE_RANGE_C: Final = (-30.0, 70.0)
#: Lowest rated power factor magnitude (guide: 0.5 to 1.0, leading or lagging).
PF_MIN: Final = 0.5
#: The isolated pulse outputs, Wh per pulse (Kh).
KH_WH: Final = (10, 100, 1000)
#: Mechanical counter: Wh per count.
COUNTER_WH_PER_COUNT: Final = (100, 1000)

# ---------------------------------------------------------- input bounds
#: Largest CT primary a secondary-rated model accepts.
MAX_CT_PRIMARY_A: Final = 5000
#: Any input current above this is rejected as bad input (not an over-current
#: condition): four times the largest CT primary any model accepts, with margin.
ABSOLUTE_MAX_CURRENT_A: Final = 4 * 1.1 * MAX_CT_PRIMARY_A
ABSOLUTE_MAX_VOLTAGE_V: Final = 600.0
#: Frequency and temperature a sample may carry.
INPUT_FREQUENCY_RANGE_HZ: Final = (0.0, 100.0)
INPUT_TEMPERATURE_RANGE_C: Final = (-60.0, 150.0)
#: Supply hold-up time a model may configure.
HOLD_UP_RANGE_S: Final = (0.0, 10.0)
#: Sample period accepted by the core.
SAMPLE_PERIOD_RANGE_S: Final = (1e-6, 86_400.0)
#: Injectable calibration error, and its size when a command or profile event
#: gives none: four times the class limit at PF 1, so a check against the class fails.
CALIBRATION_ERROR_RANGE_PCT: Final = (-50.0, 50.0)
DEFAULT_CALIBRATION_ERROR_PCT: Final = 2.0
#: Seeds (accuracy curve, profile noise) are 63-bit non-negative integers.
SEED_MAX: Final = 2**63 - 1

# ------------------------------------------------------ demand settings
#: Register block C ranges (REGISTER_MAP.md 201-204).
DEMAND_INTERVAL_RANGE_MIN: Final = (1, 60)
DEMAND_SUBINTERVALS_RANGE: Final = (1, 15)
#: 0 means "until reset"; otherwise 1..168 h.
DEMAND_MAX_WINDOW_RANGE_H: Final = (1, 168)
