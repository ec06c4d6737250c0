"""Mirroring a physical Mini Meter: its pulse outputs followed as the twin's registers
(follow mode, :mod:`.follow`) and cross-checked against the model of the load the rig
applies (:mod:`.crosscheck`, :mod:`.reference`), live in the :class:`Mirror` part.
"""

from twin.mirror.config import MirrorConfig
from twin.mirror.crosscheck import (
    Bound,
    Check,
    CrossCheck,
    EdgeMark,
    HistoryPoint,
    Verdict,
    Window,
    check_window,
    class_limit_pct,
    judge,
    pulses_to_decide,
)
from twin.mirror.follow import Follow, with_mirror_bits
from twin.mirror.mirror import COUNTER_FILE, Mirror
from twin.mirror.modbus_reference import ModbusMeterReference, ModbusMeterSpec
from twin.mirror.part import Follower, mirror_part
from twin.mirror.reference import ProfileReference, Reference
from twin.mirror.state import STATE_FILE, MirrorState

__all__ = [
    "COUNTER_FILE",
    "STATE_FILE",
    "Bound",
    "Check",
    "CrossCheck",
    "EdgeMark",
    "Follow",
    "Follower",
    "HistoryPoint",
    "Mirror",
    "MirrorConfig",
    "MirrorState",
    "ModbusMeterReference",
    "ModbusMeterSpec",
    "ProfileReference",
    "Reference",
    "Verdict",
    "Window",
    "check_window",
    "class_limit_pct",
    "judge",
    "mirror_part",
    "pulses_to_decide",
    "with_mirror_bits",
]
