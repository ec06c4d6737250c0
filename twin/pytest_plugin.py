"""The pytest plugin (entry point ``pytest11``): a Mini Meter twin as a test fixture.

Theory of operation
-------------------
Installing ``minimeter-twin`` registers this module with pytest. A test asks for:

- ``meter_twin``: one meter on a free loopback port with a manual clock, a
  :class:`~twin.hil.MeterTwin` (``.url``, ``.unit``, ``.client()``, ``.set_load()``,
  ``.inject()``, ``.add_fault()``, ``.advance(seconds)``, ``.snapshot()``);
- ``meter_fleet``: a factory, ``meter_fleet(3)`` starts three meters (unit ids 1..3 on
  one port) and returns a :class:`~twin.hil.MeterFleet`; every fleet stops at teardown;
- ``meter_twin_mqtt``: ``meter_twin`` publishing to the broker given by
  ``--meter-mqtt URL`` or ``@pytest.mark.meter(mqtt=URL)`` (skipped without one), a
  state every :data:`MQTT_INTERVAL_S` wall seconds. The URL is read by
  :func:`twin.mqtt.config.parse_url`, so a bad one fails with the MQTT package's message.

Options, lowest precedence first: the command line (``--meter-model``,
``--meter-profile``, ``--meter-speed``), the ``meter`` marker's keywords (any
:class:`~twin.runtime.config.TwinConfig` option: ``model=``, ``profile=``,
``accuracy_seed=``, ``word_order=``, ``allow_writes=``...), then indirect
parametrization (``@pytest.mark.parametrize("meter_twin", [{...}], indirect=True)``).
The twin runs on its own thread (:mod:`twin.hil.runner`), so sync and async tests
both work. The heavy imports happen when a fixture is first used, not when pytest
loads the plugin.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from twin.hil import MeterFleet, MeterTwin
    from twin.mqtt import MqttConfig

MARKER = "meter"
MANUAL = "manual"
MQTT_INTERVAL_S = 0.1  # wall seconds between states: tests wait for messages, not minutes


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("minimeter", "minimeter-twin fixtures (meter_twin, meter_fleet)")
    group.addoption(
        "--meter-model",
        default=None,
        metavar="MODEL",
        help="model of the fixtures' meters, e.g. MMS-100A (default: the twin's, MMD-200A)",
    )
    group.addoption(
        "--meter-profile",
        default=None,
        metavar="PROFILE",
        help="load profile of the fixtures' meters: a shipped name or a path (default: default)",
    )
    group.addoption(
        "--meter-speed",
        default=MANUAL,
        type=_speed,
        metavar="SPEED",
        help="'manual' (default: time moves only by .advance()) or a clock factor, e.g. 60",
    )
    group.addoption(
        "--meter-mqtt",
        default=None,
        metavar="URL",
        help="broker for meter_twin_mqtt, e.g. mqtt://127.0.0.1:1883",
    )


def _speed(text: str) -> str | float:
    if text == MANUAL:
        return MANUAL
    try:
        speed = float(text)
    except ValueError:
        raise pytest.UsageError(
            f"--meter-speed {text!r}: expected 'manual' or a factor > 0"
        ) from None
    if not (math.isfinite(speed) and speed > 0):
        raise pytest.UsageError(f"--meter-speed {text!r}: expected 'manual' or a factor > 0")
    return speed


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): options of the meter_twin / meter_fleet twins, e.g. "
        "model='MMS-100A', profile='creep-check', accuracy_seed=7, mqtt='mqtt://host:1883'",
    )


def meter_options(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The options of a fixture's twin: command line < ``meter`` marker < indirect param."""
    cfg = request.config
    options: dict[str, Any] = {}
    if cfg.getoption("--meter-model"):
        options["model"] = cfg.getoption("--meter-model")
    if cfg.getoption("--meter-profile"):
        options["profile"] = cfg.getoption("--meter-profile")
    speed = cfg.getoption("--meter-speed")
    options["speed"] = None if speed == MANUAL else speed
    for marker in reversed(list(request.node.iter_markers(MARKER))):  # closest marker wins
        if marker.args:
            raise pytest.UsageError(
                f"@pytest.mark.{MARKER}: keyword options only, got {marker.args}"
            )
        options.update(marker.kwargs)
    param = getattr(request, "param", None)
    if param is not None:
        if not isinstance(param, dict):
            raise pytest.UsageError(
                f"indirect parameter of {request.fixturename}: {param!r}; "
                "expected a dict of options"
            )
        options.update(param)
    return options


@pytest.fixture
def meter_twin(request: pytest.FixtureRequest) -> Iterator[MeterTwin]:
    """One meter on a free port, manual clock; stopped at teardown."""
    from twin.hil import MeterTwin

    options = meter_options(request)
    options.pop("mqtt", None)
    with MeterTwin(**options) as twin:
        yield twin


@pytest.fixture
def meter_fleet(request: pytest.FixtureRequest) -> Iterator[Callable[..., MeterFleet]]:
    """Factory: ``meter_fleet(n, **options)`` starts ``n`` meters on one port."""
    from twin.hil import MeterFleet

    started: list[MeterFleet] = []

    def start(n: int = 2, **options: Any) -> MeterFleet:
        merged = {**meter_options(request), **options}
        merged.pop("mqtt", None)
        fleet = MeterFleet(n, **merged).start()
        started.append(fleet)
        return fleet

    yield start
    for fleet in reversed(started):
        fleet.close()


@pytest.fixture
def meter_twin_mqtt(request: pytest.FixtureRequest) -> Iterator[MeterTwin]:
    """``meter_twin`` publishing over MQTT to ``--meter-mqtt`` / ``meter(mqtt=URL)``."""
    from twin.errors import ConfigError
    from twin.hil import MeterTwin

    options = meter_options(request)
    url = options.pop("mqtt", None) or request.config.getoption("--meter-mqtt")
    if not url:
        pytest.skip(
            "meter_twin_mqtt needs a broker: --meter-mqtt mqtt://HOST:PORT or "
            f"@pytest.mark.{MARKER}(mqtt='mqtt://HOST:PORT')"
        )
    try:
        mqtt: MqttConfig | str = mqtt_config(str(url))
    except ConfigError as exc:
        mqtt = str(exc)
    if isinstance(mqtt, str):  # failed outside the except: no "during handling" second copy
        pytest.fail(mqtt, pytrace=False)  # the MQTT package's own one-line message
    with MeterTwin(**options, mqtt=mqtt) as twin:
        yield twin


def mqtt_config(url: str) -> MqttConfig:
    """The fixture's MQTT config: the broker of ``url``, a state every MQTT_INTERVAL_S."""
    from twin.mqtt import MqttConfig
    from twin.mqtt.config import parse_url

    tls, host, port, user, password = parse_url(url)
    return MqttConfig(
        host=host,
        port=port,
        tls=tls,
        username=user,
        password=password,
        interval_s=MQTT_INTERVAL_S,
    )
