"""Fixtures of the HIL suite: the target, and the report collected while tests run.

Options: ``--target`` (twin | modbus://HOST:PORT[?unit=N&word_order=little] |
pulses:URL), ``--load FILE`` and ``--load-uncertainty PCT`` (pulses target),
``--hil-report FILE`` (Markdown), ``--twin-accuracy-seed N`` and ``--inject-error
KIND`` (twin target). The model of the twin and pulses targets is the plugin's
``--meter-model``. JUnit XML is pytest's ``--junitxml``. The pulses target records
once per session (``pulse_run``), with the rig a ``pytest_hil_rig`` hook gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hil_tests import hooks
from hil_tests.pulses import PulseRun, record
from hil_tests.report import Collector
from hil_tests.rig import Rig, WallRig
from hil_tests.targets import Target, parse_target
from twin.core import DEFAULT_MODEL
from twin.hil import LoopThread
from twin.loadprofile import load_profile

COLLECTOR = pytest.StashKey[Collector]()
TARGET = pytest.StashKey[Target]()


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    pluginmanager.add_hookspecs(hooks)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hil", "HIL contract suite")
    group.addoption(
        "--target", default="twin", help="twin | modbus://HOST:PORT[?unit=N] | pulses:URL"
    )
    group.addoption("--load", default=None, metavar="FILE", help="the rig's load (pulses target)")
    group.addoption(
        "--load-uncertainty",
        type=float,
        default=0.0,
        metavar="PCT",
        help="pulses target: the rig's stated accuracy in applying the load, %% (default 0)",
    )
    group.addoption("--hil-report", default=None, metavar="FILE", help="write a Markdown report")
    group.addoption(
        "--twin-accuracy-seed",
        type=int,
        default=None,
        metavar="N",
        help="twin target: a seeded in-class error curve (default: an ideal meter)",
    )
    group.addoption(
        "--inject-error",
        action="append",
        default=[],
        metavar="KIND[:PCT]",
        help="twin target: inject a meter error at start, e.g. calibration:1",
    )


def pytest_configure(config: pytest.Config) -> None:
    options: dict[str, Any] = {}
    model = config.getoption("--meter-model") or DEFAULT_MODEL
    options["model"] = model
    if config.getoption("--twin-accuracy-seed") is not None:
        options["accuracy_seed"] = config.getoption("--twin-accuracy-seed")
    target = parse_target(config.getoption("--target"), config.getoption("--load"), options)
    target = target.with_errors(tuple(config.getoption("--inject-error")))
    config.stash[TARGET] = target
    shown = model if target.kind != "modbus" else "as read"
    config.stash[COLLECTOR] = Collector(target.text, shown)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    return pytestconfig.stash[TARGET]


@pytest.fixture(scope="session")
def pulse_run(target: Target, pytestconfig: pytest.Config) -> PulseRun:
    """The pulses target's recording over one pass of the load (made once per session)."""
    target.require_pulses()
    assert target.load is not None
    load = load_profile(target.load)
    hook = pytestconfig.hook.pytest_hil_rig
    rig: Rig = hook(config=pytestconfig, source_url=target.pulse_url, load=target.load) or WallRig()
    uncertainty_pct = float(pytestconfig.getoption("--load-uncertainty"))
    loop = LoopThread("hil-pulses")
    try:
        return loop.run(
            lambda: record(target.pulse_url, load, rig, uncertainty_pct),
            timeout_s=load.duration_s + 3600.0,
        )
    finally:
        loop.close()


@pytest.fixture(scope="session")
def collector(pytestconfig: pytest.Config) -> Collector:
    return pytestconfig.stash[COLLECTOR]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        reason = ""
        if report.skipped and isinstance(report.longrepr, tuple):
            reason = str(report.longrepr[2]).removeprefix("Skipped: ")
        elif report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = crash.message if crash is not None else report.longreprtext
            reason = " ".join(text.split())[:300]
        item.config.stash[COLLECTOR].outcomes.append((item.nodeid, report.outcome, reason))
    return report


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    collector = config.stash.get(COLLECTOR, None)
    if collector is None or not collector.rows:
        return
    terminalreporter.write_sep("=", f"ANSI C12.1 points ({collector.target})")
    for line in collector.c12_lines():
        terminalreporter.write_line(line)


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = session.config.getoption("--hil-report")
    if path:
        session.config.stash[COLLECTOR].write(Path(path))
