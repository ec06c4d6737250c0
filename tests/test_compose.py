"""compose.yaml and the Dockerfile, checked statically (no container engine runs here).

Every `minimeter` command in them is parsed by the real CLI parser and validated into
the runtime's config; the Dockerfile's COPY sources must exist and cover what
`pip install .` needs; the broker config is run through the real mosquitto binary, and
the image's HEALTHCHECK command is run against a real `minimeter run`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from twin.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
TWINS = ("twin", "physical-meter")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            out.append((keyword.upper(), rest.strip()))
    return out


def _interpolate(value: str) -> str:
    """Compose's ${VAR:-default} / ${VAR} with the variables unset (the defaults)."""
    return re.sub(r"\$\{(\w+)(?::?-([^}]*))?\}", lambda m: m.group(2) or "", value)


def _parse_run(argv: list[str]) -> Any:
    """Parse a `minimeter run ...` argv with the real CLI; validate it like `run` does."""
    assert argv[0] == "minimeter", argv
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    if "run" not in (sub.choices or {}):
        pytest.skip("`minimeter run` is not registered yet (twin/cli/run.py missing)")
    try:
        args = parser.parse_args(argv[1:])
    except SystemExit:
        pytest.fail(f"the real CLI refuses {shlex.join(argv)} (see its message above)")
    assert args.command == "run"
    from twin.cli import run

    if hasattr(run, "config_from_args"):
        run.config_from_args(args)  # ConfigError on a bad model, unit, interval, ...
    return args


def _ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for spec in service.get("ports", []):
        assert isinstance(spec, str), f"use the short syntax: {spec!r}"
        ip, host, container = _interpolate(spec).rsplit(":", 2)
        out.append((ip, int(host), int(container)))
    return out


# -- compose.yaml ------------------------------------------------------------------------


def test_services_and_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    default = {n for n, s in services.items() if "profiles" not in s}
    assert default == {"twin", "mosquitto", "physical-meter"}
    declared = set(compose.get("volumes") or {})
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source, target = mount.split(":")[:2]
            assert source in declared, f"{name}: volume {source} not declared at top level"
            assert target.startswith("/")
    used = [m.split(":")[0] for s in services.values() for m in s.get("volumes", [])]
    assert len(used) == len(set(used)), "two services must not share a state volume"


@pytest.mark.parametrize("name", TWINS)
def test_twin_services_build_from_this_repo(compose: dict[str, Any], name: str) -> None:
    build = compose["services"][name]["build"]
    context = (COMPOSE.parent / build["context"]).resolve()
    assert context == ROOT and context.is_dir()
    assert (context / build.get("dockerfile", "Dockerfile")).is_file()


@pytest.mark.parametrize("name", TWINS)
def test_twin_commands_parse_with_the_real_cli(compose: dict[str, Any], name: str) -> None:
    svc = compose["services"][name]
    args = _parse_run(svc["command"])
    assert args.host == "0.0.0.0"  # inside a container: listen beyond loopback
    # State lives in the service's named volume, so restarts keep the energy registers.
    targets = [m.split(":")[1] for m in svc["volumes"]]
    assert str(args.state_dir) in targets and not args.no_state
    # The published container port is the one the twin listens on...
    assert [(c) for _, _, c in _ports(svc)] == [args.port]
    # ... and the one the image's HEALTHCHECK probes (MINIMETER_PORT, default 5020).
    assert int(svc.get("environment", {}).get("MINIMETER_PORT", 5020)) == args.port
    from twin.loadprofile import load_profile

    load_profile(args.profile)  # the named profile exists and validates


def test_twins_differ_where_a_second_meter_must(compose: dict[str, Any]) -> None:
    twin, phys = (_parse_run(compose["services"][n]["command"]) for n in TWINS)
    assert (twin.port, phys.port) == (5020, 5021)
    assert phys.profile != twin.profile and phys.serial_number != twin.serial_number


def test_ports_are_valid_distinct_and_loopback_by_default(compose: dict[str, Any]) -> None:
    host_ports = []
    for name, svc in compose["services"].items():
        for ip, host, container in _ports(svc):
            assert 1 <= host <= 65535 and 1 <= container <= 65535, name
            assert ip == "127.0.0.1", f"{name}: publish on loopback by default"
            host_ports.append(host)
    shard_ports = [h for n in SHARDS for _, h, _ in _ports(compose["services"][n])]
    assert sorted(host_ports) == sorted([1883, 5020, 5021, *shard_ports])
    assert len(set(host_ports)) == len(host_ports)  # every profile can run at once
    # The anonymous broker is never opened to the LAN by MINIMETER_BIND.
    assert compose["services"]["mosquitto"]["ports"] == ["127.0.0.1:1883:1883"]


def test_mosquitto_service_and_config(compose: dict[str, Any]) -> None:
    svc = compose["services"]["mosquitto"]
    assert svc["image"].startswith("eclipse-mosquitto:")
    (mount,) = svc["configs"]
    assert mount["target"] == "/mosquitto/config/mosquitto.conf"
    lines = compose["configs"][mount["source"]]["content"].splitlines()
    assert "listener 1883 0.0.0.0" in lines and "allow_anonymous true" in lines
    for name in TWINS:  # the twins start once the broker accepts clients
        depends = compose["services"][name]["depends_on"]
        assert depends["mosquitto"]["condition"] == "service_healthy"


@pytest.mark.skipif(shutil.which("mosquitto") is None, reason="mosquitto not installed")
def test_mosquitto_config_runs_and_healthcheck_passes(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The real broker accepts the config; the compose healthcheck command succeeds."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    content = compose["configs"]["mosquitto-conf"]["content"]
    content = content.replace("listener 1883 0.0.0.0", f"listener {port} 127.0.0.1")
    content = content.replace("persistence true", "persistence false")  # runs as any user
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(content)
    test = compose["services"]["mosquitto"]["healthcheck"]["test"]
    assert test[0] == "CMD" and shutil.which(test[1])
    argv = [str(port) if a == "1883" else a for a in test[1:]]
    with subprocess.Popen(["mosquitto", "-c", str(conf)], stderr=subprocess.PIPE) as broker:
        try:
            for _ in range(50):
                if subprocess.run(argv, capture_output=True, timeout=5).returncode == 0:
                    break
                assert broker.poll() is None, broker.stderr.read() if broker.stderr else b""
            else:
                raise AssertionError("mosquitto healthcheck never passed")
        finally:
            broker.terminate()
            broker.wait(timeout=5)


# -- Dockerfile ----------------------------------------------------------------------------


def _one(instructions: list[tuple[str, str]], keyword: str) -> str:
    found = [rest for kw, rest in instructions if kw == keyword]
    assert len(found) == 1, f"expected one {keyword}, found {found}"
    return found[0]


def test_dockerfile_base_user_expose(dockerfile: list[tuple[str, str]]) -> None:
    assert _one(dockerfile, "FROM").startswith("python:3.11-slim")
    keywords = [kw for kw, _ in dockerfile]
    user = _one(dockerfile, "USER")
    assert user not in ("root", "0") and not user.startswith("0:")
    install = next(i for i, (kw, rest) in enumerate(dockerfile) if "pip install" in rest)
    assert install < keywords.index("USER") < keywords.index("CMD")
    assert _one(dockerfile, "EXPOSE") == "5020"


def test_dockerfile_copies_what_pip_install_needs(dockerfile: list[tuple[str, str]]) -> None:
    copied: list[Path] = []
    for kw, rest in dockerfile:
        if kw == "COPY":
            *sources, _dest = shlex.split(rest)
            for src in sources:
                assert not src.startswith("--"), "no --from/--chown: sources are the context"
                assert (ROOT / src).exists(), f"COPY source {src} missing from the context"
                copied.append((ROOT / src).resolve())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    needed = [ROOT / "pyproject.toml", ROOT / project["project"]["readme"]]
    tool = project["tool"]["setuptools"]
    mapped = {pkg: ROOT / d for pkg, d in tool.get("package-dir", {}).items()}
    needed += [mapped.get(pkg, ROOT / pkg.replace(".", "/")) for pkg in tool["packages"]]
    for path in needed:
        path = path.resolve()
        assert any(path == c or c in path.parents for c in copied), f"{path} not copied"


def test_dockerfile_cmd_parses_with_the_real_cli(dockerfile: list[tuple[str, str]]) -> None:
    args = _parse_run(json.loads(_one(dockerfile, "CMD")))
    assert args.host == "0.0.0.0" and args.port == 5020
    assert str(args.state_dir) in json.loads(_one(dockerfile, "VOLUME"))


def test_dockerfile_healthcheck_probes_a_real_twin(dockerfile: list[tuple[str, str]]) -> None:
    """Run the HEALTHCHECK command against `minimeter run`, and against nothing."""
    options, _, cmd = _one(dockerfile, "HEALTHCHECK").partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    argv = json.loads(cmd)
    assert argv[0] == "python"
    argv[0] = sys.executable
    _parse_run(["minimeter", "run"])  # skips if `run` is not there yet
    twin = subprocess.Popen(
        [sys.executable, "-m", "twin", "run", "--host", "127.0.0.1", "--port", "0", "--no-state"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert twin.stdout is not None
        first = twin.stdout.readline()  # "serving modbus tcp 127.0.0.1:PORT ..."
        port = re.search(r"127\.0\.0\.1:(\d+)", first)
        assert port, f"unexpected first line of minimeter run: {first!r}"
        env = {**os.environ, "MINIMETER_PORT": port.group(1)}
        assert subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode == 0
    finally:
        twin.terminate()
        twin.wait(timeout=10)
        if twin.stdout is not None:
            twin.stdout.close()
    # Nothing listening any more: the probe must report unhealthy.
    assert subprocess.run(argv, env=env, capture_output=True, timeout=10).returncode != 0


# -- profile "shards": N shard processes of one fleet file -----------------------------

SHARDS = [f"shard-{i}" for i in range(4)]


def test_shards_profile_serves_the_fleet_once(compose: dict[str, Any], tmp_path: Path) -> None:
    """Every shard runs `--shard I/N` of the same fleet (the k8s ConfigMap's file),
    publishes exactly its planned ports, keeps its own volume, and is probed by
    twin.health on every port it listens on."""
    from twin.cli import run
    from twin.runtime import load_fleet
    from twin.runtime.shard import plan_shards

    services = compose["services"]
    found = sorted(n for n, s in services.items() if "shards" in s.get("profiles", []))
    assert found == SHARDS
    (fleet_config,) = {c["source"] for n in SHARDS for c in services[n]["configs"]}
    fleet_file = (COMPOSE.parent / compose["configs"][fleet_config]["file"]).resolve()
    assert fleet_file == ROOT / "deploy" / "k8s" / "base" / "fleet.yaml"
    fleet = load_fleet(fleet_file)
    plan = plan_shards(fleet, len(SHARDS))
    served: list[str] = []
    for i, name in enumerate(SHARDS):
        svc = services[name]
        argv = list(svc["command"])
        (target,) = {c["target"] for c in svc["configs"]}
        assert argv[argv.index("--fleet") + 1] == target
        argv[argv.index("--fleet") + 1] = str(fleet_file)
        args = _parse_run(argv)
        assert args.shard == f"{i}/{len(SHARDS)}" and args.host == "0.0.0.0"
        config = run.config_from_args(args)
        served += [m.serial for m in config.resolved.meters]
        assert [c for _, _, c in _ports(svc)] == plan[i] == config.resolved.ports
        assert [h for _, h, _ in _ports(svc)] == [10000 + p for p in plan[i]]
        (mount,) = svc["volumes"]
        assert mount == f"{name}-state:{args.state_dir}"
        assert svc["healthcheck"]["test"] == ["CMD", "python", "-m", "twin.health", "--listening"]
        assert svc["stop_signal"] == "SIGTERM"  # the last checkpoint on stop
    assert sorted(served) == sorted(m.serial for m in fleet.meters)
