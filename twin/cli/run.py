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
import sys
from pathlib import Path
from typing import Literal, cast

from devices import open_sink
from twin.cli.meter_options import add_meter_options, choices_from_args
from twin.cli.status import coarse_step_warner, exposure_warnings, status_printer, where
from twin.core import DEFAULT_MODEL
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
)
from twin.modbus.serial import SerialSettings
from twin.modbus.tcp import DEFAULT_IDLE_TIMEOUT_S
from twin.mqtt import config as mqtt_options
from twin.registers import TwinHealth, WordOrder
from twin.runtime.config import TwinConfig
from twin.runtime.fleet import OnPowerLoss, load_fleet
from twin.runtime.shard import parse_shard
from twin.runtime.supervisor import run_workers
from twin.runtime.twin import Twin

DEFAULT_PORT = 5020


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_security_arguments(parser)
    a = parser.add_argument
    a(
        "--profile",
        default=DEFAULT_PROFILE,
        help="shipped profile name or a YAML file (default: %(default)s)",
    )
    a("--model", default=DEFAULT_MODEL, help="meter model, e.g. MMS-100A (default: %(default)s)")
    a("--serial-number", default="MM00000001", help="meter serial number (default: %(default)s)")
    a("--host", default="127.0.0.1", help="TCP address to listen on (default: %(default)s)")
    a(
        "--port",
        type=int,
        default=None,
        help=f"TCP port, 0 for any free port; not with --fleet (default: {DEFAULT_PORT})",
    )
    a(
        "--no-tcp",
        action="store_true",
        help="serve RTU only; with --fleet: the fleet on --serial (default: off)",
    )
    a("--unit", type=int, default=1, help="Modbus unit id 1..247 (default: %(default)s)")
    a(
        "--speed",
        type=float,
        default=1.0,
        help="meter seconds per wall second (default: %(default)g)",
    )
    a(
        "--sample",
        type=float,
        default=1.0,
        dest="sample_s",
        help="meter seconds per sample (default: %(default)g s)",
    )
    a(
        "--tick",
        type=float,
        default=0.1,
        dest="tick_s",
        help="wall seconds per step (default: %(default)g s)",
    )
    a(
        "--until",
        type=float,
        default=None,
        dest="until_s",
        help="freeze the meter at this many meter seconds after start (default: none, run on)",
    )
    a(
        "--state-dir",
        type=Path,
        default=None,
        help="durable state (default: the per-user state dir, ~/.local/state/minimeter-twin)",
    )
    a("--no-state", action="store_true", help="keep nothing: a new meter every run (default: off)")
    a(
        "--checkpoint-interval",
        type=float,
        default=10.0,
        help="wall seconds between fsyncs of the state; every step is committed, so a "
        "process crash loses at most a step (every few ticks past 400 meters: see "
        "docs/reliability.md), nothing a client read; a power cut at most this x --speed "
        "of meter time more (default: %(default)g s)",
    )
    a(
        "--word-order",
        choices=("big", "little"),
        default="big",
        help="word order of multi-register numbers (default: %(default)s)",
    )
    a(
        "--no-sunspec",
        action="store_true",
        help="drop the SunSpec block at 40000 (default: off, served)",
    )
    a(
        "--allow-writes",
        action="store_true",
        help="accept writes to block C (default: off, exception 01)",
    )
    a(
        "--allow-energy-reset",
        action="store_true",
        help="accept command 30078, clear energy (default: off)",
    )
    a(
        "--serial",
        default=None,
        metavar="DEVICE",
        help="also serve Modbus RTU on this device (default: none)",
    )
    a("--baud", type=int, default=9600, help="RTU baud rate (default: %(default)s)")
    a("--parity", choices=("N", "E", "O"), default="N", help="RTU parity (default: %(default)s)")
    a(
        "--stopbits",
        type=int,
        choices=(1, 2),
        default=1,
        help="RTU stop bits (default: %(default)s)",
    )
    a(
        "--seed",
        type=int,
        default=None,
        help="seed of the profile's noise (default: the profile's seed)",
    )
    a(
        "--accuracy-seed",
        type=int,
        default=None,
        help="draw an error curve within the accuracy class (default: none, ideal)",
    )
    a(
        "--pulse-out",
        default=None,
        metavar="URL",
        help="drive a pulse sink from the 10 Wh output (default: none)",
    )
    add_meter_options(parser)
    g = parser.add_argument_group("fleets, faults and limits")
    g.add_argument(
        "--meters",
        type=int,
        default=1,
        help="serve N meters on unit ids --unit..--unit+N-1 of one port (default: %(default)s)",
    )
    g.add_argument(
        "--fleet", type=Path, default=None, help="a YAML fleet file, many ports (default: none)"
    )
    g.add_argument(
        "--unknown-unit",
        choices=("exception", "silent"),
        default=None,
        help="unknown unit id: exception 0x0B or no answer "
        "(default: the fleet file's, else exception)",
    )
    g.add_argument(
        "--on-power-loss",
        choices=("answer", "silent"),
        default="answer",
        help="while a meter is unpowered: frozen registers with status bit 13, or silence "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a protocol fault, e.g. delay:ms=200,jitter=50; repeatable (default: none)",
    )
    g.add_argument(
        "--fault-seed", type=int, default=None, help="seed of the fault generator (default: random)"
    )
    g.add_argument(
        "--trace", type=Path, default=None, help="write every frame as a JSON line (default: none)"
    )
    g.add_argument(
        "--max-connections",
        type=int,
        default=256,
        help="TCP connections per port (default: %(default)s)",
    )
    g.add_argument(
        "--idle-timeout",
        type=float,
        default=DEFAULT_IDLE_TIMEOUT_S,
        help="close connections without a complete request this long, s; 0: never "
        "(default: %(default)g s)",
    )
    add_http_arguments(parser)
    g.add_argument(
        "--shard",
        default=None,
        help="serve shard I/N of --fleet (0-based, split by port), or auto: I from a "
        "StatefulSet hostname (name-I), N from MINIMETER_SHARDS (default: the whole fleet)",
    )
    g.add_argument(
        "--workers",
        type=int,
        default=1,
        help="K shard processes of --fleet under one supervisor (default: 1, this process)",
    )
    mqtt_options.add_arguments(parser)


def add_security_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Modbus/TCP Security (TLS, docs/security.md)")
    g.add_argument(
        "--unit-alias",
        default="0,255",
        help="unit ids a one-meter TCP port answers as its meter, or 'none' (default: 0,255)",
    )
    g.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        help="server certificate, PEM (default: none, no TLS)",
    )
    g.add_argument(
        "--tls-key", type=Path, default=None, help="its private key, PEM (default: none)"
    )
    g.add_argument(
        "--tls-ca", type=Path, default=None, help="CA of the client certificates (default: none)"
    )
    g.add_argument(
        "--tls-write-role",
        action="append",
        default=None,
        help="a client role that may write; repeatable (default: operator)",
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
    default_port = MODBUS_TLS_PORT if tls is not None else DEFAULT_PORT
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
        choices=choices_from_args(args),
        shard=None if args.shard is None else parse_shard(args.shard),
    )


async def _serve(config: TwinConfig, pulse_out: str | None = None) -> None:
    async with Twin(config) as twin, contextlib.AsyncExitStack() as parts:
        out: PulseOut | None = None
        if pulse_out is not None:  # the first meter's 10 Wh output onto the sink
            first = twin.meters[0]
            out = await parts.enter_async_context(PulseOut(open_sink(pulse_out)))
            parts.callback(twin.subscribe(lambda m, ev: out.on_events(ev) if m is first else None))
            parts.callback(twin.health.watch(TwinHealth.PULSE_SINK_FAILING, lambda: out.failing))
        parts.callback(twin.subscribe(coarse_step_warner(config.sample_s)))

        def ready(twin: Twin) -> None:
            print(where(twin), flush=True)  # the first line: a signal from now on stops cleanly
            for warning in twin.warnings:
                print(f"minimeter run: warning: {warning}", file=sys.stderr, flush=True)

        def notes() -> list[str]:
            return ["pulse_out=FAILING"] if out is not None and out.failing else []

        await twin.run_until_signal(status_printer(sys.stdout.isatty(), notes), on_ready=ready)


def _event_loop_runner() -> contextlib.AbstractContextManager[asyncio.Runner]:
    try:
        import uvloop
    except ImportError:  # not on this platform: the stdlib loop is correct, only slower
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def main(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    for warning in exposure_warnings(config):
        print(warning, file=sys.stderr, flush=True)
    if args.workers != 1:
        if args.pulse_out is not None:
            raise ConfigError("--pulse-out drives one process's first meter: not with --workers")
        return run_workers(config, args.workers, runner=_event_loop_runner)
    with _event_loop_runner() as runner:
        runner.run(_serve(config, args.pulse_out))
    return 0
