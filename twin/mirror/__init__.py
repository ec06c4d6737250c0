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
    Verdict,
    Window,
    check_window,
    class_limit_pct,
    judge,
    pulses_to_decide,
)
from twin.mirror.follow import Follow, with_mirror_bits
from twin.mirror.mirror import COUNTER_FILE, HistoryPoint, Mirror
from twin.mirror.reference import ProfileReference, Reference

__all__ = [
    "COUNTER_FILE",
    "Bound",
    "Check",
    "CrossCheck",
    "EdgeMark",
    "Follow",
    "HistoryPoint",
    "Mirror",
    "MirrorConfig",
    "ProfileReference",
    "Reference",
    "Verdict",
    "Window",
    "check_window",
    "class_limit_pct",
    "judge",
    "pulses_to_decide",
    "with_mirror_bits",
]
