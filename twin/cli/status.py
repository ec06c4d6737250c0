"""What `minimeter run` prints while it serves: where, a status line, warnings.

The first stdout line says where the twin serves (tests and scripts wait for it);
then a status line every few seconds (a table redrawn in place on a terminal). Its
times are labelled: ``uptime`` is the meter's own (it continues across restarts on
the same state, as the register does) and ``profile_t`` is where the meter is in its
profile (which starts again at 0 with every run, and repeats past its end).
Warnings go to stderr, each once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

from twin.core import Event, StepTooCoarse
from twin.http import exposure_warning as http_exposure
from twin.modbus.security import exposure_warning as modbus_exposure
from twin.runtime.config import TwinConfig
from twin.runtime.groups import fleet_totals
from twin.runtime.meters import LiveMeter
from twin.runtime.twin import Twin


def exposure_warnings(config: TwinConfig) -> list[str]:
    """What is open beyond loopback without protection (one line each, said at start):
    Modbus writes or energy reset without TLS, the HTTP API's commands without a token."""
    found = [
        modbus_exposure(
            config.host,
            allow_writes=config.allow_writes,
            allow_energy_reset=config.allow_energy_reset,
            tls=config.tls is not None,
        )
    ]
    if config.http is not None:
        found.append(http_exposure(config.http, allow_writes=config.allow_writes))
    return [line for line in found if line is not None]


def where(twin: Twin) -> str:
    """The first line: what is served where (Modbus, and HTTP when on)."""
    modbus = _where_modbus(twin)
    return modbus if twin.http is None else f"{modbus}; http {twin.http.url}"


def _where_modbus(twin: Twin) -> str:
    cfg = twin.config
    writes = "writes on" if cfg.allow_writes else "read-only"
    if len(twin.meters) == 1:
        parts = []
        if twin.tcp is not None:
            parts.append(f"modbus tcp {twin.tcp.host}:{twin.tcp.port}")
        if twin.rtu is not None:
            s = twin.rtu.settings
            parts.append(f"modbus rtu {s.device} {s.baud} {s.parity}8{s.stopbits}")
        unit = twin.meters[0].spec.unit
        return f"serving {', '.join(parts)} unit {unit} ({cfg.meter.model.name}, {writes})"
    parts = []
    for port, server in twin.servers.items():
        units = sorted(m.spec.unit for m in twin.meters if m.spec.port == port)
        ids = ",".join(map(str, units))
        if len(units) > 2 and units == list(range(units[0], units[-1] + 1)):
            ids = f"{units[0]}..{units[-1]}"
        parts.append(f"modbus tcp {server.host}:{server.port} units {ids}")
    if twin.rtu is not None:
        s = twin.rtu.settings
        parts.append(f"modbus rtu {s.device} {s.baud} {s.parity}8{s.stopbits}")
    return f"serving {'; '.join(parts)} ({len(twin.meters)} meters, {writes})"


def status_rows(twin: Twin) -> list[tuple[str, str]]:
    """What the live status table shows (label, value): the first meter, fleet totals."""
    meter = twin.meter()
    s = meter.snapshot
    rows = [
        ("uptime", f"{s.uptime_s} s (the meter's, across restarts)"),
        ("profile time", f"{profile_time_s(meter):.0f} s of {meter.profile.name}"),
        ("energy delivered", f"{s.energy_delivered_wh} Wh"),
        ("power", f"{s.power_w:.1f} W  (L1 {s.power_l1_w:.1f}, L2 {s.power_l2_w:.1f})"),
        ("demand / max", f"{s.demand_kw:.3f} / {s.demand_max_kw:.3f} kW"),
        ("status bits", f"0x{s.status_bits:08x}  error {s.error_code}"),
        ("pulses 10/100/1000", f"{s.pulses_10wh} / {s.pulses_100wh} / {s.pulses_1000wh}"),
        ("power-ups", str(s.power_up_count)),
    ]
    if twin.store_error is not None:
        rows.append(("store", f"FAILING: {twin.store_error}"))
    if len(twin.meters) > 1:
        rows[1:2] = [("meters", _fleet_summary(twin)), ("energy (first)", rows[1][1])]
    if twin.mqtt is not None:
        rows.append(("mqtt", f"{twin.mqtt.status} ({twin.mqtt.config.url})"))
    if twin.health.bits:
        rows.append(("twin health", f"{twin.health.bits} (register 79): {twin.health.conditions}"))
    return rows


def _fleet_summary(twin: Twin) -> str:
    t = fleet_totals(twin.meters)  # from the core's bank: no snapshot per meter
    return f"{t.meters} ({t.unpowered} unpowered), {t.energy_wh} Wh, {t.power_w:.0f} W in all"


def profile_time_s(meter: LiveMeter) -> float:
    """Where the meter is in its profile (which repeats past its end)."""
    duration_s = meter.profile.duration_s
    return meter.time_s % duration_s if duration_s else meter.time_s


def status_line(twin: Twin) -> str:
    meter = twin.meter()
    s = meter.snapshot
    line = (
        f"uptime={s.uptime_s}s profile_t={profile_time_s(meter):.0f}s "
        f"E={s.energy_delivered_wh}Wh P={s.power_w:.1f}W "
        f"D={s.demand_kw:.3f}kW status=0x{s.status_bits:08x} err={s.error_code} "
        f"ups={s.power_up_count}"
    )
    if twin.lagging:
        line += f" lag={twin.lag_s:.0f}s"
    if twin.store_error is not None:
        line += " store=FAILING"
    if twin.mqtt is not None:
        line += f" mqtt={twin.mqtt.status}"
    return line if len(twin.meters) == 1 else f"{line} meters={_fleet_summary(twin)}"


def status_printer(tty: bool, notes: Callable[[], list[str]] = list) -> Callable[[Twin], None]:
    """Prints the status; ``notes()`` adds words to the line (e.g. a failing pulse sink)."""
    drawn = 0

    def show(twin: Twin) -> None:
        nonlocal drawn
        if not tty:
            sys.stdout.write(" ".join([status_line(twin), *notes()]) + "\n")
        else:  # a table redrawn in place: cursor up over the last one, clear to the end
            rows = status_rows(twin)
            width = max(len(label) for label, _ in rows)
            table = "".join(f"  {label:<{width}}  {value}\x1b[K\n" for label, value in rows)
            sys.stdout.write((f"\x1b[{drawn}F" if drawn else "") + table)
            drawn = len(rows)
        sys.stdout.flush()

    return show


def coarse_step_warner(sample_s: float) -> Callable[[LiveMeter, list[Event]], None]:
    """Say once per output (fleet-wide) that a sample held two or more of its edges."""
    said: set[str] = set()

    def listener(meter: LiveMeter, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, StepTooCoarse) and ev.output not in said:
                said.add(ev.output)
                unit = "" if ev.output == "counter" else " Wh"
                print(
                    f"minimeter run: warning: --sample {sample_s:g} s is too coarse for the "
                    f"{ev.output}{unit} output of {meter.serial} (at {ev.time_s:g} s): one sample "
                    "held two or more of its pulse edges; edges are placed as if power were "
                    "constant within a sample (a shorter --sample follows faster change)",
                    file=sys.stderr,
                    flush=True,
                )

    return listener
