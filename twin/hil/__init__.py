"""Test handles on a running twin: the pytest plugin's fixtures and the HIL suite's twin target.

Owns :class:`MeterTwin` (one meter), :class:`MeterFleet` (``n`` meters on one port),
:class:`MeterHandle` (one meter of a fleet), :class:`Load` and the thread that runs a
twin beside the test (:mod:`twin.hil.runner`). Layer: above ``twin.runtime``, below
``twin.pytest_plugin`` and ``twin.cli``.
"""

from twin.hil.handles import (
    CommandFailed,
    Load,
    MeterFleet,
    MeterHandle,
    MeterTwin,
)
from twin.hil.mqtt import mqtt_options
from twin.hil.runner import LoopThread

__all__ = [
    "CommandFailed",
    "Load",
    "LoopThread",
    "MeterFleet",
    "MeterHandle",
    "MeterTwin",
    "mqtt_options",
]
