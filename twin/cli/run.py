"""`minimeter run`: serve a live meter over Modbus TCP (and RTU) until SIGINT/SIGTERM.

Options are validated into a frozen :class:`~twin.runtime.config.TwinConfig` once; every
mistake is a one-line ``ConfigError``/``ServeError`` (exit 1). The first stdout line
says where the twin serves (tests and scripts wait for it); then a status line every
few seconds, redrawn in place when stdout is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Literal, cast

from devices import open_sink
from twin.errors import ConfigError
from twin.http import add_arguments as add_http_arguments
from twin.http import config_from_args as http_config_from_args
from twin.loadprofile import DEFAULT_PROFILE
from twin.mirror.pulse_out import PulseOut
from twin.modbus import UnknownUnit
from twin.modbus.faults import parse_fault
from twin.modbus.security import (
    DEFAULT_WRITE_ROLES,
    MODBUS_TLS_PORT,
    TlsSettings,
    exposure_warning,
)
from twin.modbus.serial import SerialSettings
from twin.modbus.tcp import DEFAULT_IDLE_TIMEOUT_S
from twin.mqtt import config as mqtt_options
from twin.registers import WordOrder
from twin.runtime.config import TwinConfig
from twin.runtime.fleet import OnPowerLoss, load_fleet
from twin.runtime.twin import Twin


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_security_arguments(parser)
    a = parser.add_argument
    a("--profile", default=DEFAULT_PROFILE, help="shipped profile name or a YAML file (default)")
    a("--model", default="MMD-200A", help="meter model, e.g. MMS-100A, MMD-200A (MMD-200A)")
    a("--serial-number", default="MM00000001", help="meter serial number (MM00000001)")
    a("--host", default="127.0.0.1", help="TCP address to listen on (127.0.0.1)")
    a(
        "--port",
        type=int,
        default=None,
        help="TCP port, 0 for any free port (5020; not with --fleet)",
    )
    a("--no-tcp", action="store_true", help="serve RTU only (with --fleet: the fleet on --serial)")
    a("--unit", type=int, default=1, help="Modbus unit id 1..247 (1)")
    a("--speed", type=float, default=1.0, help="meter seconds per wall second (1)")
    a("--sample", type=float, default=1.0, dest="sample_s", help="meter seconds per sample (1)")
    a("--tick", type=float, default=0.1, dest="tick_s", help="wall seconds per step (0.1)")
    a("--until", type=float, default=None, dest="until_s", help="freeze the meter at this time")
    a("--state-dir", type=Path, default=None, help="durable state (per-user state dir)")
    a("--no-state", action="store_true", help="keep nothing: a new meter every run")
    a("--checkpoint-interval", type=float, default=10.0, help="seconds between saves (10)")
    a("--word-order", choices=("big", "little"), default="big", help="multi-register words")
    a("--no-sunspec", action="store_true", help="drop the SunSpec block at 40000")
    a("--allow-writes", action="store_true", help="accept writes to block C")
    a("--allow-energy-reset", action="store_true", help="accept command 30078 (clear energy)")
    a("--serial", default=None, metavar="DEVICE", help="also serve Modbus RTU on this device")
    a("--baud", type=int, default=9600, help="RTU baud rate (9600)")
    a("--parity", choices=("N", "E", "O"), default="N", help="RTU parity (N)")
    a("--stopbits", type=int, choices=(1, 2), default=1, help="RTU stop bits (1)")
    a("--seed", type=int, default=None, help="seed of the profile's noise")
    a("--accuracy-seed", type=int, default=None, help="draw an error curve within class")
    a("--pulse-out", default=None, metavar="URL", help="drive a pulse sink from the 10 Wh output")
    g = parser.add_argument_group("fleets, faults and limits")
    g.add_argument(
        "--meters",
        type=int,
        default=1,
        help="serve N meters on unit ids --unit..--unit+N-1 of one port (1)",
    )
    g.add_argument("--fleet", type=Path, default=None, help="a YAML fleet file (many ports)")
    g.add_argument(
        "--unknown-unit",
        choices=("exception", "silent"),
        default=None,
        help="unknown unit id: exception 0x0B or no answer (exception)",
    )
    g.add_argument(
        "--on-power-loss",
        choices=("answer", "silent"),
        default="answer",
        help="while a meter is unpowered: frozen registers with status bit 13, or silence",
    )
    g.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a protocol fault, e.g. delay:ms=200,jitter=50 (repeatable)",
    )
    g.add_argument("--fault-seed", type=int, default=None, help="seed of the fault generator")
    g.add_argument("--trace", type=Path, default=None, help="write every frame as a JSON line")
    g.add_argument(
        "--max-connections", type=int, default=256, help="TCP connections per port (256)"
    )
    g.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="close connections without a complete request this long, s; 0: never (60)",
    )
    add_http_arguments(parser)
    mqtt_options.add_arguments(parser)


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Modbus/TCP Security (TLS, docs/security.md)")
    g.add_argument(
        "--unit-alias",
        default="0,255",
        help="unit ids a one-meter TCP port answers as its meter, or 'none' (0,255)",
    )
    g.add_argument("--tls-cert", type=Path, default=None, help="server certificate (PEM)")
    g.add_argument("--tls-key", type=Path, default=None, help="its private key (PEM)")
    g.add_argument("--tls-ca", type=Path, default=None, help="CA of the client certificates")
    g.add_argument(
        "--tls-write-role",
        action="append",
        default=None,
        help="a client role that may write (repeatable; operator)",
    )


def _unit_aliases(text: str) -> frozenset[int]:
    if text.strip().lower() == "none":
        return frozenset()
    try:
        ids = frozenset(int(part) for part in text.split(","))
    except ValueError:
        ids = frozenset({-1})
    if not all(0 <= i <= 255 for i in ids):
        raise ConfigError(f"--unit-alias {text}: expected unit ids 0..255 like 0,255, or none")
    return ids


def _tls(args: argparse.Namespace) -> TlsSettings | None:
    given = [args.tls_cert, args.tls_key, args.tls_ca]
    if not any(given):
        return None
    if not all(given):
        raise ConfigError("--tls-cert, --tls-key and --tls-ca go together (mutual TLS)")
    roles = frozenset(args.tls_write_role or DEFAULT_WRITE_ROLES)
    return TlsSettings(args.tls_cert, args.tls_key, args.tls_ca, roles)


def config_from_args(args: argparse.Namespace) -> TwinConfig:
    from twin.store.sqlite import default_state_dir

    serial = None
    if args.serial:
        parity = cast(Literal["N", "E", "O"], args.parity)
        stopbits = cast(Literal[1, 2], args.stopbits)
        serial = SerialSettings(args.serial, args.baud, parity, stopbits)
    if args.no_state and args.state_dir is not None:
        raise ConfigError("--no-state and --state-dir exclude each other")
    state_dir = None if args.no_state else (args.state_dir or default_state_dir())
    fleet = None
    if args.fleet is not None:
        if args.meters != 1:
            raise ConfigError("--fleet and --meters exclude each other")
        if args.port is not None:
            raise ConfigError(
                "--fleet and --port exclude each other: the fleet file gives each meter's "
                "port (per meter or in its defaults)"
            )
        # The command line's per-meter options are the defaults beneath the file's own;
        # ports never are (a meter without one is an error, not a silent 5020).
        fleet = load_fleet(
            args.fleet,
            base={
                "model": args.model,
                "profile": args.profile,
                "word_order": args.word_order,
                "on_power_loss": args.on_power_loss,
            },
            tcp=not args.no_tcp,
        )
    tls = _tls(args)
    default_port = MODBUS_TLS_PORT if tls is not None else 5020
    return TwinConfig(
        profile=args.profile,
        model=args.model,
        serial_number=args.serial_number,
        seed=args.seed,
        accuracy_seed=args.accuracy_seed,
        host=args.host,
        port=None if args.no_tcp else (default_port if args.port is None else args.port),
        unit=args.unit,
        speed=args.speed,
        tick_s=args.tick_s,
        sample_s=args.sample_s,
        until_s=args.until_s,
        state_dir=state_dir,
        checkpoint_interval_s=args.checkpoint_interval,
        word_order=WordOrder(args.word_order),
        sunspec=not args.no_sunspec,
        allow_writes=args.allow_writes,
        allow_energy_reset=args.allow_energy_reset,
        serial=serial,
        meters=args.meters,
        fleet=fleet,
        unknown_unit=None if args.unknown_unit is None else UnknownUnit(args.unknown_unit),
        on_power_loss=OnPowerLoss(args.on_power_loss),
        faults=tuple(parse_fault(spec) for spec in args.fault),
        fault_seed=args.fault_seed,
        trace_path=args.trace,
        max_connections=args.max_connections,
        idle_timeout_s=args.idle_timeout or None,
        http=http_config_from_args(args),
        unit_aliases=_unit_aliases(args.unit_alias),
        tls=tls,
        mqtt=mqtt_options.config_from_args(args),
    )


def _where(twin: Twin) -> str:
    where = _where_modbus(twin)
    return where if twin.http is None else f"{where}; http {twin.http.url}"


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
    s = twin.meter().snapshot
    rows = [
        ("meter time", f"{twin.meter_time_s:.0f} s"),
        ("energy delivered", f"{s.energy_delivered_wh} Wh"),
        ("power", f"{s.power_w:.1f} W  (L1 {s.power_l1_w:.1f}, L2 {s.power_l2_w:.1f})"),
        ("demand / max", f"{s.demand_kw:.3f} / {s.demand_max_kw:.3f} kW"),
        ("status bits", f"0x{s.status_bits:08x}  error {s.error_code}"),
        ("pulses 10/100/1000", f"{s.pulses_10wh} / {s.pulses_100wh} / {s.pulses_1000wh}"),
        ("power-ups", str(s.power_up_count)),
    ]
    if len(twin.meters) > 1:
        rows[1:2] = [("meters", _fleet_summary(twin)), ("energy (first)", rows[1][1])]
    if twin.mqtt is not None:
        rows.append(("mqtt", f"{twin.mqtt.status} ({twin.mqtt.config.url})"))
    return rows


def _fleet_summary(twin: Twin) -> str:
    snaps = [m.snapshot for m in twin.meters]
    dark = sum(not s.powered for s in snaps)
    total_wh = sum(s.energy_delivered_wh for s in snaps)
    total_w = sum(s.power_w for s in snaps if not math.isnan(s.power_w))
    return f"{len(snaps)} ({dark} unpowered), {total_wh} Wh, {total_w:.0f} W in all"


def status_line(twin: Twin) -> str:
    s = twin.meter().snapshot
    line = (
        f"t={twin.meter_time_s:.0f}s E={s.energy_delivered_wh}Wh P={s.power_w:.1f}W "
        f"D={s.demand_kw:.3f}kW status=0x{s.status_bits:08x} err={s.error_code} "
        f"ups={s.power_up_count}"
    )
    if twin.lagging:
        line += f" lag={twin.lag_s:.0f}s"
    if twin.mqtt is not None:
        line += f" mqtt={twin.mqtt.status}"
    return line if len(twin.meters) == 1 else f"{line} meters={_fleet_summary(twin)}"


def _status_printer(tty: bool) -> Callable[[Twin], None]:
    drawn = 0

    def show(twin: Twin) -> None:
        nonlocal drawn
        if not tty:
            sys.stdout.write(status_line(twin) + "\n")
        else:  # a table redrawn in place: cursor up over the last one, clear to the end
            rows = status_rows(twin)
            width = max(len(label) for label, _ in rows)
            table = "".join(f"  {label:<{width}}  {value}\x1b[K\n" for label, value in rows)
            sys.stdout.write((f"\x1b[{drawn}F" if drawn else "") + table)
            drawn = len(rows)
        sys.stdout.flush()

    return show


async def _serve(config: TwinConfig, pulse_out: str | None = None) -> None:
    async with Twin(config) as twin, contextlib.AsyncExitStack() as parts:
        if pulse_out is not None:  # the first meter's 10 Wh output onto the sink
            first = twin.meters[0]
            out = await parts.enter_async_context(PulseOut(open_sink(pulse_out)))
            parts.callback(twin.subscribe(lambda m, ev: out.on_events(ev) if m is first else None))
        print(_where(twin), flush=True)
        await twin.run_until_signal(_status_printer(sys.stdout.isatty()))


def _event_loop_runner() -> contextlib.AbstractContextManager[asyncio.Runner]:
    try:
        import uvloop
    except ImportError:  # not on this platform: the stdlib loop is correct, only slower
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    warning = exposure_warning(
        config.host,
        allow_writes=config.allow_writes,
        allow_energy_reset=config.allow_energy_reset,
        tls=config.tls is not None,
    )
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)
    with _event_loop_runner() as runner:
        runner.run(_serve(config, args.pulse_out))
    return 0
