"""A load override keeps the profile's service and CT placement (issue 10 wiring)."""

from __future__ import annotations

from twin.control import ElementLoad, SetLoad
from twin.loadprofile import load_profile
from twin.runtime.override import OverrideSampler


def test_override_keeps_the_service_and_cts_of_the_profile() -> None:
    profile = load_profile("wye-120-208")  # L1 CT on L2 from 1 h to 1 h 30 min
    load = SetLoad(l1=ElementLoad(voltage_v=120.0, current_a=10.0), l2=None)
    sampler = OverrideSampler(profile.spec, 0, load, None)
    block = sampler.block(3600.0, 1.0, 10)
    assert block.current_a[0].tolist() == [10.0] * 10
    assert block.line_angle_deg == (0.0, 120.0)
    assert block.ct_line is not None and block.ct_line[:, 0].tolist() == [1, 1]
