"""Bad input at every front end: one clear message naming what was wrong, nothing changed.

One table per front end. CLIs (``minimeter run | simulate | profiles | mirror |
registers``, in process through ``twin.cli.main.main``; a few again as real processes):
exit 1, no traceback, the error line names the option, key or file. HTTP bodies: a
4xx JSON refusal naming the parameter, the meter's non-volatile state unchanged.
Modbus writes to block C: the exception code the map promises, state unchanged.
MQTT commands against a real Mosquitto: a refusal on the result topic naming what was
wrong and what was expected, with the correlation id, state unchanged.
Device URLs: ``DeviceError`` naming the parameter. Files come from the issue's attack
list: YAML nested 5,000 deep, a fleet file that is not UTF-8, ``/dev/zero`` as a
profile, a 100,000-meter fleet, a 0-byte store.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from devices import open_sink, open_source
from tests.helpers import REPO, Subscriber, until
from twin.cli.main import main
from twin.errors import DeviceError
from twin.http import HttpConfig, build_app
from twin.modbus.client import ExceptionReply, MeterClient
from twin.mqtt import MqttConfig
from twin.runtime.config import TwinConfig
from twin.runtime.twin import Twin
from twin.store import STORE_FILENAME

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    deep = d / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    latin = d / "latin.yaml"
    latin.write_bytes(b"fleet: 1\nmeters: [{unit: 1, port: 5020, serial: \xff\xfe}]\n")
    big = d / "big.yaml"
    with big.open("w") as f:
        f.write("fleet: 1\nmeters:\n")
        f.writelines(
            f"  - {{unit: {i % 247 + 1}, port: {5020 + i // 247}}}\n" for i in range(100_000)
        )
    zero_store = d / "zero-store"
    zero_store.mkdir()
    (zero_store / STORE_FILENAME).touch()
    not_a_dir = d / "plain-file"
    not_a_dir.write_text("x")
    bad_key = d / "bad-key.yaml"
    bad_key.write_text("schema: 1\nname: x\ncolour: red\nsegments: []\n")
    return {
        "deep": deep,
        "latin": latin,
        "big": big,
        "zero_store": zero_store,
        "plain_file": not_a_dir,
        "bad_key": bad_key,
    }


RUN = ["run", "--port", "0", "--no-state"]
MIRROR = ["mirror", "--no-state", "--port", "0"]
# (argv, what the error line must name); {name} is a path from the files fixture.
CLI_CASES: list[tuple[list[str], str]] = [
    ([*RUN, "--speed", "-1"], "--speed -1"),
    ([*RUN, "--speed", "fast"], "--speed"),
    ([*RUN, "--unit", "0"], "--unit 0"),
    ([*RUN, "--port", "70000"], "--port 70000"),
    ([*RUN, "--checkpoint-interval", "0"], "--checkpoint-interval"),
    ([*RUN, "--sample", "0"], "--sample"),
    ([*RUN, "--profile", "no-such-profile"], "no-such-profile"),
    ([*RUN, "--profile", "{bad_key}"], "colour"),
    ([*RUN, "--profile", "/dev/zero"], "/dev/zero"),
    ([*RUN, "--model", "MMX-9"], "MMX-9"),
    ([*RUN, "--http", "not-a-port"], "--http"),
    ([*RUN, "--tls-cert", "x.pem"], "--tls-cert"),
    ([*RUN, "--unit-alias", "300"], "--unit-alias"),
    ([*RUN, "--fault", "delay:ms=abc"], "ms='abc'"),
    ([*RUN, "--seed", "-5"], "--seed"),
    ([*RUN, "--mqtt-refuse-unknown"], "--mqtt-refuse-unknown needs --mqtt"),
    (
        [*RUN, "--meters", "2", "--shard", "0/2", "--mqtt", "mqtt://h", "--mqtt-refuse-unknown"],
        "every shard would refuse",
    ),
    ([*RUN, "--pulse-out", "bogus://x"], "bogus"),
    ([*RUN, "--pulse-out", "modbus-coil://127.0.0.1:1"], "coil"),
    (["run", "--no-state", "--fleet", "{deep}"], "{deep}"),
    (["run", "--no-state", "--fleet", "{latin}"], "not UTF-8"),
    (["run", "--no-state", "--fleet", "{big}"], "at most 10000 meters"),
    (["run", "--port", "0", "--state-dir", "{zero_store}"], "0 bytes"),
    (["run", "--port", "0", "--state-dir", "{plain_file}"], "{plain_file}"),
    (["run", "--no-state", "--state-dir", "x"], "--no-state and --state-dir"),
    (["simulate", "default", "--duration", "forever"], "forever"),
    (["simulate", "default", "--step", "0"], "--step"),
    (["simulate", "{deep}"], "nested too deeply"),
    (["profiles", "check", "/dev/zero"], "/dev/zero"),
    (["profiles", "check", "{deep}"], "nested too deeply"),
    (["profiles", "show", "no-such-profile"], "no-such-profile"),
    (["mirror", "--no-state", "--port", "0", "--source", "bogus://x"], "bogus"),
    (["mirror", "--no-state", "--port", "0", "--source", "adam6051://127.0.0.1:1"], "channel"),
    (
        ["mirror", "--no-state", "--port", "0", "--source", "virtual://a", "--status", "0"],
        "--status",
    ),
    (["registers", "--format", "pdf"], "--format"),
    (["no-such-command"], "no-such-command"),
]


def _cli(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue() + err.getvalue()


def _id(value: object) -> str:
    return " ".join(value)[:60] if isinstance(value, list) else str(value)[:40]


@pytest.mark.parametrize(("argv", "names"), CLI_CASES, ids=_id)
def test_cli_refuses_with_one_line_naming_what(
    argv: list[str], names: str, files: dict[str, Path]
) -> None:
    argv = [a.format(**files) for a in argv]
    names = names.format(**files)
    code, output = _cli(argv)
    assert code == 1, output
    assert "Traceback" not in output
    errors = [ln for ln in output.splitlines() if "error" in ln.lower()]
    assert len(errors) == 1 and names in errors[0], output


def test_cli_refusals_as_real_processes(files: dict[str, Path]) -> None:
    """The issue's traceback cases, as a user runs them (all at once: one process start)."""
    cases = [
        (["run", "--no-state", "--fleet", str(files["deep"])], str(files["deep"])),
        (["run", "--no-state", "--fleet", str(files["latin"])], "not UTF-8"),
        (["profiles", "check", "/dev/zero"], "/dev/zero"),
        (["run", "--port", "0", "--state-dir", str(files["zero_store"])], "0 bytes"),
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "twin", *argv],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for argv, _ in cases
    ]
    for proc, (argv, names) in zip(procs, cases, strict=True):
        out, err = proc.communicate(timeout=50)
        assert proc.returncode == 1, (argv, err)
        assert "Traceback" not in out + err
        assert err.strip().count("\n") == 0 and names in err, (argv, err)


@pytest.fixture
async def http_twin() -> AsyncIterator[tuple[Twin, TestClient[Any, Any]]]:
    twin = Twin(TwinConfig(port=0, speed=None, allow_writes=True))
    await twin.__aenter__()
    client = TestClient(TestServer(build_app(twin, HttpConfig(port=0))))
    await client.start_server()
    twin.step(120)
    yield twin, client
    await client.close()
    await twin.__aexit__(None, None, None)


SERIAL = "MM00000001"
# (command, raw body, what the refusal must name)
HTTP_CASES: list[tuple[str, bytes, str]] = [
    ("set_demand", b"{not json", "JSON"),
    ("set_demand", b"[1, 2]", "object"),
    ("set_demand", b'{"demand_interval_min": 61}', "demand_interval_min"),
    ("set_demand", b'{"demand_interval_min": "15"}', "demand_interval_min"),
    ("set_demand", b'{"demand_subintervals": 7}', "demand_subintervals"),
    ("set_demand", b'{"colour": 1}', "colour"),
    ("set_load", b'{"l1": {"voltage_v": -5, "current_a": 1, "pf": 1}}', "voltage_v"),
    ("set_load", b'{"l1": {"voltage_v": 120, "current_a": 1, "pf": 2}}', "pf"),
    ("set_load", b'{"for_s": "soon"}', "for_s"),
    ("switch_profile", b'{"profile": "no-such-profile"}', "no-such-profile"),
    ("inject_error", b'{"kind": "gremlins"}', "gremlins"),
    ("add_fault", b'{"spec": "delay:ms=abc"}', "ms"),
    ("set_speed", b'{"speed": 0}', "speed"),
    ("clear_energy", b"{}", "energy"),
    ("no_such_command", b"{}", "no_such_command"),
]


@pytest.mark.parametrize(("command", "body", "names"), HTTP_CASES, ids=_id)
async def test_http_refuses_bad_bodies_and_changes_nothing(
    http_twin: tuple[Twin, TestClient[Any, Any]], command: str, body: bytes, names: str
) -> None:
    twin, client = http_twin
    meter = twin.meters[0]
    before = (meter.nv_state(), meter.load, len(twin.hooks.faults.active))
    resp = await client.post(
        f"/api/meters/{SERIAL}/commands/{command}",
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= resp.status < 500
    answer = await resp.json()
    assert answer["ok"] is False and names in answer["error"], answer
    assert "Traceback" not in answer["error"] and "\n" not in answer["error"]
    assert (meter.nv_state(), meter.load, len(twin.hooks.faults.active)) == before


# (target, command, raw payload, what the refusal must name, and what it expects)
MQTT_CASES: list[tuple[str, str, bytes, str, str]] = [
    (SERIAL, "set_demand", b'{"demand_interval_min": ', "not JSON", "a JSON object"),
    (SERIAL, "set_demand", b"[1, 2]", "list", "a JSON object"),
    (SERIAL, "warp_drive", b"{}", "warp_drive", "expected one of set_load"),
    (SERIAL, "set_demand", b'{"demand_interval_min": 99}', "99 out of range", "1..60 min"),
    (SERIAL, "set_load", b'{"l1": {"voltage_v": 120, "current_a": -1}}', "current_a", "0..22000"),
    (SERIAL, "set_demand", b'{"demand_interval_min": "15"}', "'15'", "an integer"),
    (SERIAL, "inject_error", b'{"kind": 3}', "kind: 3", "memory, calibration"),
    (SERIAL, "clear_pulses", b'{"colour": "red"}', "'colour'", "no parameters"),
    (SERIAL, "clear_energy", b"{}", "energy reset is locked", "--allow-energy-reset"),
    ("MM99999999", "clear_pulses", b"{}", "'MM99999999'", f"one of {SERIAL}"),
    ("all", "set_demand", b'{"demand_subintervals": 7}', "demand_subintervals", "divid"),
]


@pytest.mark.parametrize(("target", "command", "payload", "names", "expects"), MQTT_CASES, ids=_id)
async def test_mqtt_refuses_bad_commands_and_changes_nothing(
    mosquitto: int, target: str, command: str, payload: bytes, names: str, expects: str
) -> None:
    mqtt = MqttConfig(host="127.0.0.1", port=mosquitto, refuse_unknown=True)
    async with Twin(TwinConfig(port=0, speed=None, allow_writes=True, mqtt=mqtt)) as twin:
        twin.step(3600)
        publisher = twin.mqtt
        assert publisher is not None
        await until(lambda: publisher.connected, "connected to the broker")
        meter = twin.meters[0]
        before = (meter.nv_state(), meter.load, len(twin.hooks.faults.active))
        async with (
            Subscriber(mosquitto, "minimeter/+/cmd/result") as sub,
            MeterClient(port=twin.port) as modbus,
        ):
            registers = await modbus.read_registers(0, 80), await modbus.read_registers(200, 6)
            correlation = f"bad-{command}".encode()
            topic = f"minimeter/{target}/cmd/{command}"
            await sub.publish(topic, payload, correlation_data=correlation)
            reply = await sub.wait_for(lambda m: m.correlation_data == correlation)
            twin.step(0)  # nothing due: registers differ only if the command acted
            after = await modbus.read_registers(0, 80), await modbus.read_registers(200, 6)
        assert reply.topic == f"minimeter/{target}/cmd/result"
        result = reply.json()
        assert result["ok"] is False and result["id"] == correlation.decode()
        error = result["error"]
        assert names in error and expects in error and "\n" not in error, error
        assert "Traceback" not in error
        assert (meter.nv_state(), meter.load, len(twin.hooks.faults.active)) == before
        assert after == registers


# (address, values, Modbus exception code): 02 outside block C, 03 a refused value.
MODBUS_CASES: list[tuple[int, list[int], int]] = [
    (200, [12345], 3),  # no such command code
    (200, [30078], 3),  # energy clear while locked
    (201, [0], 3),  # demand interval 1..60
    (201, [61], 3),
    (202, [7], 3),  # sub-intervals must divide the interval
    (203, [9], 3),  # demand method 0..2
    (204, [169], 3),  # window 0..168 h
    (205, [3], 3),  # registration mode 0..2
    (0, [1], 2),  # block A is read-only
    (206, [1], 2),  # past block C
    (199, [1, 1], 2),
]


@pytest.mark.parametrize(("address", "values", "code"), MODBUS_CASES)
async def test_modbus_refuses_bad_writes_and_changes_nothing(
    http_twin: tuple[Twin, TestClient[Any, Any]], address: int, values: list[int], code: int
) -> None:
    twin, _ = http_twin
    meter = twin.meters[0]
    before = meter.nv_state()
    async with MeterClient(port=twin.port) as client:
        with pytest.raises(ExceptionReply) as info:
            if len(values) == 1:
                await client.write_register(address, values[0])
            else:
                await client.write_registers(address, values)
        assert info.value.code == code
        assert await client.read_uint(0, 4) == meter.snapshot.energy_delivered_wh
    assert meter.nv_state() == before


BAD_URLS: list[tuple[str, str, str]] = [
    ("source", "nosuch://x", "nosuch"),
    ("source", "adam6051://127.0.0.1:502", "channel"),
    ("source", "adam6051://127.0.0.1:502?channel=99", "channel"),
    ("source", "adam6051://127.0.0.1:502?channel=0&kh=-1", "kh"),
    ("source", "adam6051://127.0.0.1:99999?channel=0", "port"),
    ("source", "adam6051://127.0.0.1:502?channel=0&colour=red", "colour"),
    ("source", "mqtt-edges://127.0.0.1", "topic"),
    ("sink", "modbus-coil://127.0.0.1:502", "coil"),
    ("sink", "modbus-coil://127.0.0.1:502?coil=x", "coil"),
    ("sink", "adam6051://127.0.0.1:502?channel=0", "adam6051"),
    ("sink", "not a url", "not a url"),
]


@pytest.mark.parametrize(("role", "url", "names"), BAD_URLS)
def test_device_urls_are_refused_naming_the_part(role: str, url: str, names: str) -> None:
    with pytest.raises(DeviceError) as info:
        if role == "source":
            open_source(url)
        else:
            open_sink(url)
    msg = str(info.value)
    assert names in msg and "\n" not in msg, msg
