"""How the meter is wired in a profile: the service, each CT's line and orientation.

A profile names its service (``service: split-phase-120-240``, the default, or
``wye-120-208``: two phases of a 120/208 V wye) and may place each CT (``wiring:
{CT1: {line: L2, reversed: true}}``): ``CT1`` is the CT of element 1 (the meter's L1
voltage input), ``line`` the conductor it is clamped on, ``reversed`` whether it is
mounted backwards. The core turns these into each element's P, Q, PF and lead/lag
(:mod:`twin.core.wiring`); this module only says, per sample, where each CT is.

Two events change the wiring for a while, relative to the profile's ``wiring``:
``ct_wrong_phase`` moves that line's CT onto the other line's conductor and
``ct_reversed`` turns it around. :func:`ct_arrays` gives the core's ``ct_line`` and
``ct_reversed`` arrays for a window of samples: (2, 1) constants when no such event
touches the window, so correct wiring costs nothing per sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from twin.core import Service
from twin.loadprofile.compose import ceil_div
from twin.loadprofile.events import WIRING_KINDS, EventKind, ProfileEvent
from twin.loadprofile.reader import Ctx, LineDict

#: The profile's names of the core's services: the enum names, lowercase, dashed.
SERVICES: Final = {s.name.lower().replace("_", "-"): s for s in Service}
DEFAULT_SERVICE: Final = Service.SPLIT_PHASE_120_240
#: The CTs by the element they feed (CT1: element 1, the meter's L1 input).
CT_NAMES: Final = ("CT1", "CT2")
CT_KEYS: Final = ("line", "reversed")
LINE_NAMES: Final = ("L1", "L2")


def service_name(service: Service) -> str:
    return next(name for name, s in SERVICES.items() if s is service)


@dataclass(frozen=True, slots=True)
class Wiring:
    """The service and, per element, the line its CT is on and whether it is reversed."""

    service: Service = DEFAULT_SERVICE
    ct_line: tuple[int, int] = (0, 1)
    ct_reversed: tuple[bool, bool] = (False, False)

    @property
    def straight(self) -> bool:
        """Each CT on its own line, facing the right way."""
        return self.ct_line == (0, 1) and self.ct_reversed == (False, False)

    def describe(self) -> str:
        """``wye-120-208; CT1 on L2 reversed, CT2 on L1`` (CTs only when not straight)."""
        text = service_name(self.service)
        cts = []
        for k, (line, rev) in enumerate(zip(self.ct_line, self.ct_reversed, strict=True)):
            if line != k or rev:
                cts.append(f"{CT_NAMES[k]} on {LINE_NAMES[line]}" + (" reversed" if rev else ""))
        return f"{text}; {', '.join(cts)}" if cts else text


def parse_wiring(ctx: Ctx, data: LineDict) -> Wiring:
    """The top-level ``service`` and ``wiring`` keys of a profile."""
    service = DEFAULT_SERVICE
    if "service" in data:
        service = SERVICES[ctx.at("service", data).choice(data["service"], SERVICES)]
    lines, reversed_ = [0, 1], [False, False]
    if "wiring" in data:
        wctx = ctx.at("wiring", data)
        wiring = wctx.mapping(data["wiring"], "a mapping of CT1, CT2")
        wctx.keys(wiring, CT_NAMES)
        for k, name in enumerate(CT_NAMES):
            if name not in wiring:
                continue
            cctx = wctx.at(name, wiring)
            ct = cctx.mapping(wiring[name], "a mapping of line (L1 or L2) and reversed")
            cctx.keys(ct, CT_KEYS)
            if "line" in ct:
                lines[k] = LINE_NAMES.index(cctx.at("line", ct).choice(ct["line"], LINE_NAMES))
            if "reversed" in ct:
                reversed_[k] = cctx.at("reversed", ct).boolean(ct["reversed"])
    return Wiring(service, (lines[0], lines[1]), (reversed_[0], reversed_[1]))


def ct_arrays(
    wiring: Wiring, events: tuple[ProfileEvent, ...], t0_us: int, dt_us: int, n: int
) -> tuple[Any, Any]:
    """(ct_line, ct_reversed) for samples at local times ``t0 + i*dt``: (2, 1) or (2, n)."""
    line: Any = np.array(wiring.ct_line, np.int64)[:, None]
    rev: Any = np.array(wiring.ct_reversed, np.bool_)[:, None]
    widened = False
    for ev in events:
        if ev.kind not in WIRING_KINDS:
            continue
        j0 = max(0, ceil_div(ev.at_us - t0_us, dt_us))
        j1 = min(n, ceil_div(ev.end_us - t0_us, dt_us))
        if j0 >= j1:
            continue
        if not widened:
            line, rev = np.repeat(line, n, axis=1), np.repeat(rev, n, axis=1)
            widened = True
        # Events of one kind on one line never overlap (checked on parsing), so a
        # flip applied once per event is what the profile says.
        rows, window = list(ev.lines), slice(j0, j1)
        if ev.kind is EventKind.CT_WRONG_PHASE:
            line[rows, window] = 1 - line[rows, window]
        else:
            rev[rows, window] = ~rev[rows, window]
    return line, rev
