"""A pytest plugin (``-p tests.hil.standin_rig``) giving the HIL suite's pulses target a
rig: a stand-in meter on a manual clock whose 10 Wh output drives a virtual sink.

The stand-in is the mirror tests' (:class:`tests.mirror.standin.StandIn`: the real
core playing the load, with ``--standin-calibration PCT`` as its calibration error);
its edges reach ``virtual://CHANNEL`` through :class:`twin.mirror.pulse_out.PulseOut`,
where the suite's ``virtual://CHANNEL?kh=10`` source reads them. Time moves only
when the suite waits, so days of load take a second.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from devices import PulseSource, open_sink
from tests.helpers import until
from tests.mirror.standin import StandIn
from twin.mirror.pulse_out import PulseOut


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--standin-calibration", type=float, default=0.0, metavar="PCT")
    parser.addoption("--standin-model", default="MMD-200A", metavar="MODEL")


class StandInRig:
    """Applies the load by stepping the stand-in; drives its edges onto the channel."""

    def __init__(self, load: str, channel: str, calibration_pct: float, model: str) -> None:
        self.stand = StandIn(load, calibration_pct=calibration_pct, model=model)
        self.out = PulseOut(open_sink(f"virtual://{channel}"))

    def now_s(self) -> float:
        return self.stand.t_s

    async def start(self) -> None:
        await self.out.__aenter__()

    async def stop(self) -> None:
        await self.out.__aexit__(None, None, None)

    async def wait(self, seconds: float, source: PulseSource) -> None:
        self.out.on_events(self.stand.step(round(seconds)))
        await self.out.flush()
        closures = self.out.sink.closures
        await until(lambda: source.total_counts >= closures, "the suite's source")


@pytest.hookimpl
def pytest_hil_rig(config: pytest.Config, source_url: str, load: str) -> StandInRig | None:
    parts = urlsplit(source_url)
    if parts.scheme != "virtual":
        return None
    return StandInRig(
        load,
        parts.hostname or parts.path.strip("/"),
        float(config.getoption("--standin-calibration")),
        str(config.getoption("--standin-model")),
    )
