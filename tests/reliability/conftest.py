"""Fixtures of the reliability tests: the devices tests' counter module and Mosquitto
broker (one definition of each stand-in)."""

from __future__ import annotations

from tests.devices.conftest import counter_module, mosquitto

__all__ = ["counter_module", "mosquitto"]
