"""Child process of test_store_crash: a meter at constant load, committing every block.

Usage: python store_crash_child.py STORE_PATH FLEET_SIZE

Restores meter S0000 from the store (if present), prints `START <energy_uj>`, then loops:
advance the core one block, print `ENERGY <energy_uj>` (the energy reached, BEFORE any
commit of it begins), then, as the twin's tick does, commit it through the Checkpointer
(durable every 20 ms, in the WAL without fsync between): print `SAVING <energy_uj>`,
save the same NvState under FLEET_SIZE serials in one transaction, then print
`CKPT <energy_uj>`. So every state that can be in the store was reported first, and
every reported CKPT is committed.
It runs until killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from twin.core import MeterConfig, MeterCore, NvState, SampleBlock
from twin.store import Checkpointer, Store


def main() -> None:
    path, fleet = Path(sys.argv[1]), int(sys.argv[2])
    serials = [f"S{i:04d}" for i in range(fleet)]
    store = Store(path)
    nv = store.load(serials[0])
    core = MeterCore(MeterConfig(serial_number=serials[0], boot_s=0.0), nv=nv, emit_edges=False)
    out = sys.stdout
    out.write(f"START {core.nv_state().energy_delivered_uj}\n")
    out.flush()
    # 120 V, 50 A on both elements, 10 samples of 0.1 s per block: energy grows every block.
    block = SampleBlock.build(10, 0.1, voltage_v=120.0, current_a=50.0)
    checkpointer = Checkpointer(store, 0.02)
    while True:
        core.advance(block)
        state = core.nv_state()
        out.write(f"ENERGY {state.energy_delivered_uj}\n")
        out.flush()

        def fleet_items(st: NvState = state) -> list[tuple[str, NvState]]:
            out.write(f"SAVING {st.energy_delivered_uj}\n")  # lets the test aim its kill
            out.flush()
            return [(s, st) for s in serials]

        now_s = time.monotonic()
        if checkpointer.due(now_s):
            checkpointer.commit(fleet_items, now_s)
            out.write(f"CKPT {state.energy_delivered_uj}\n")
            out.flush()
        time.sleep(0.0005)  # a live runtime ticks; keeps the pipe and CPU load modest


if __name__ == "__main__":
    main()
