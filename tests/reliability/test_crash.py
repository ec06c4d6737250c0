"""SIGKILL at random moments with MQTT and a mirror live: the rig of `crash.py`.

``MM_CRASH_KILLS`` sets the number of kills: each costs a process start (about 1.1 s)
plus up to 1.6 s of run, so ``make test`` kills 5 times and ``make soak`` 60 times.
``MM_CRASH_REPORT`` appends the figures as one JSON line (``make soak``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tests.devices.fakes import CounterModule
from tests.reliability.crash import BOUND_WH, CrashRig

KILLS = int(os.environ.get("MM_CRASH_KILLS", "5"))
REPORT = os.environ.get("MM_CRASH_REPORT")


async def test_sigkill_never_sends_energy_back_and_the_mirror_counts_exactly(
    tmp_path: Path, counter_module: CounterModule, mosquitto: int
) -> None:
    rig = CrashRig(tmp_path, counter_module, mosquitto, seed=KILLS)
    figures = await rig.run(KILLS)
    assert figures.kills == figures.intact == figures.mqtt_offline == KILLS
    assert max(figures.lost_wh) <= BOUND_WH
    assert figures.module_pulses > 0 and figures.mirror_pulses == figures.module_pulses
    assert figures.mqtt_states > 0  # the MQTT comparison compared something
    line = json.dumps(figures.as_dict())
    print(f"\n{line}")
    if REPORT:
        with Path(REPORT).open("a") as f:
            f.write(line + "\n")
