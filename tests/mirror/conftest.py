"""Fixtures for the mirror tests: the devices tests' counter module and Mosquitto broker.

Reused from ``tests/devices/conftest.py`` (one definition of each stand-in), plus the
check that no test leaves a virtual channel open.
"""

from __future__ import annotations

from tests.devices.conftest import counter_module, mosquitto, no_leaked_virtual_channels

__all__ = ["counter_module", "mosquitto", "no_leaked_virtual_channels"]
