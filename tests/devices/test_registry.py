"""Opening devices by URL: bad URLs, third-party backends, missing optional extras."""

from __future__ import annotations

import sys
from importlib.metadata import EntryPoint

import pytest

from devices import (
    ENTRY_POINT_GROUP,
    SOURCE_BACKENDS,
    DeviceUrl,
    VirtualPulseSource,
    device_backends,
    open_sink,
    open_source,
    parse_duration_s,
)
from devices.modbus_counter import Adam6051PulseSource, IologikPulseSource, ModbusCounterPulseSource
from twin.errors import DeviceError

BAD_SOURCES = [
    ("adam6051:/host", "expected scheme://"),
    ("nosuch://x?kh=1", "scheme 'nosuch': expected a source: adam6051, gpio, iologik"),
    ("modbus-coil://h?coil=1", "(modbus-coil is a sink)"),
    ("adam6051://h?kh=10", "parameter 'channel' is missing"),
    ("adam6051://h?channel=12&kh=10", "channel='12': expected an integer from 0 to 11"),
    ("adam6051://?channel=0&kh=10", "no host: expected adam6051://HOST"),
    ("adam6051://h:99999?channel=0&kh=10", "the port is not a number from 0 to 65535"),
    ("adam6051://h?channel=0&kh=10&kh=20", "parameter 'kh' is given twice"),
    ("iologik://h?channel=0", "parameter 'kh' is missing"),
    ("iologik://h?channel=0&kh=-1", "kh='-1': expected a number above 0"),
    ("iologik://h?channel=0&kh=10&width=16", "unknown parameter 'width'"),
    ("modbus-counter://h?kh=10", "parameter 'addr' is missing"),
    ("modbus-counter://h?addr=16&kh=10&width=24", "width='24': expected one of 16, 32"),
    ("modbus-counter://h?addr=16&kh=10&order=middle", "order='middle': expected one of big"),
    ("modbus-counter://h?addr=16&kh=10&fc=6", "fc='6': expected an integer from 3 to 4"),
    ("modbus-counter://h?addr=16&kh=10&poll=fast", "poll='fast': expected a number with"),
    ("modbus-counter://h?addr=16&kh=10&poll=1ms", "expected a period of at least 0.01 s"),
    ("modbus-counter://h?addr=16&kh=10&pol=1s", "unknown parameter 'pol': expected one of"),
    ("modbus-counter://h?addr=16&kh=10&unit=300", "unit='300': expected an integer from 0"),
    ("virtual://a?kh=10&debounce=1s", "debounce=1.0 s: expected 0 to 0.25 s"),
    ("virtual://a?kh=10&edge=up", "edge='up': expected one of rising, falling, both"),
    ("virtual://?kh=10", "no channel name"),
    ("mqtt-tasmota://broker?kh=10", "no topic: expected mqtt-tasmota://HOST/TOPIC"),
    ("mqtt-tasmota:///t1?kh=10", "no broker"),
    ("mqtt-edges://b/t?kh=10&stamp=gps", "stamp='gps': expected one of arrival, sender"),
    ("gpio://dev/gpiochip0?line=1&kh=10", "chip path '/gpiochip0': expected gpio:///dev/"),
]


@pytest.mark.parametrize(("url", "message"), BAD_SOURCES)
def test_a_bad_source_url_is_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(DeviceError) as caught:
        open_source(url)
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    if "://" in url:
        assert url in text  # the error names the URL it is about


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("modbus-coil://h", "parameter 'coil' is missing"),
        ("adam6051://h?channel=0", "(adam6051 is a source)"),
        ("virtual://a?kh=10", "unknown parameter 'kh'"),
    ],
)
def test_a_bad_sink_url_is_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message.replace("(", r"\(").replace(")", r"\)")):
        open_sink(url)


def test_good_urls_give_the_documented_registers_and_defaults() -> None:
    adam = open_source("adam6051://10.0.0.5?channel=3&kh=10")
    assert isinstance(adam, Adam6051PulseSource)
    assert (adam.registers.address, adam.registers.word_order.value) == (6, "little")
    assert (adam.target.port, adam.registers.poll_s, adam.config.width) == (502, 1.0, 32)
    io = open_source("iologik://10.0.0.6?channel=2&kh=100&poll=500ms")
    assert isinstance(io, IologikPulseSource)
    assert (io.registers.function, io.registers.address, io.registers.poll_s) == (4, 0x14, 0.5)
    generic = open_source(
        "modbus-counter://h:5020?unit=7&fc=4&addr=0x20&width=16&order=little&kh=10&poll=2s"
    )
    assert isinstance(generic, ModbusCounterPulseSource)
    assert (generic.target.unit, generic.registers.address, generic.config.width) == (7, 32, 16)
    assert generic.source_id == "modbus-counter://h:5020/7/4/32"
    named = open_source("virtual://x?kh=1000&id=meter-7&stale=off&edge=both")
    assert (named.source_id, named.config.stale_after_s, named.config.wh_per_count) == (
        "meter-7",
        None,
        500.0,
    )


def test_durations() -> None:
    assert [parse_duration_s(t) for t in ("250ms", "2", "1.5min", "1h")] == [
        0.25,
        2.0,
        90.0,
        3600.0,
    ]
    with pytest.raises(DeviceError, match=r"units=.*expected a number"):
        parse_duration_s("3 days", what="units")


def test_url_parts() -> None:
    url = DeviceUrl.parse("mqtt-tasmota://user:p%40ss@broker:1884/tasmota_1?counter=C2&kh=10")
    assert (url.scheme, url.host, url.port, url.username, url.password) == (
        "mqtt-tasmota",
        "broker",
        1884,
        "user",
        "p@ss",
    )
    assert url.path_segment("topic") == "tasmota_1"


def test_entry_points_add_backends_without_importing_them() -> None:
    plugin = EntryPoint("source.bench", "devices.virtual:VirtualPulseSource", ENTRY_POINT_GROUP)
    missing = EntryPoint("source.ghost", "no_such_module_xyz:Ghost", ENTRY_POINT_GROUP)
    backends = device_backends([plugin, missing])  # nothing imported yet: ghost is fine here
    assert set(SOURCE_BACKENDS) < set(backends.sources)
    source = open_source("bench://wire?kh=10", backends=backends)
    assert isinstance(source, VirtualPulseSource) and source.channel == "wire"
    with pytest.raises(DeviceError, match="source 'ghost': cannot import no_such_module_xyz"):
        open_source("ghost://x?kh=1", backends=backends)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("bench", "devices.virtual:VirtualPulseSource", "expected a name source.SCHEME"),
        ("source.x", "devices.virtual", "value module:Class"),
    ],
)
def test_malformed_entry_points_are_refused(name: str, value: str, message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        device_backends([EntryPoint(name, value, ENTRY_POINT_GROUP)])


def test_an_entry_point_that_is_not_a_backend_is_refused() -> None:
    wrong = EntryPoint("sink.cfg", "devices.config:SinkConfig", ENTRY_POINT_GROUP)
    with pytest.raises(DeviceError, match="SinkConfig is not a PulseSinkBase subclass"):
        open_sink("cfg://x", backends=device_backends([wrong]))


def test_the_installed_entry_points_extend_the_static_table() -> None:
    assert set(SOURCE_BACKENDS) <= set(device_backends().sources)


def test_a_missing_optional_dependency_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "devices.gpio", raising=False)
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod -> ImportError
    with pytest.raises(DeviceError) as caught:
        open_source("gpio:///dev/gpiochip0?line=17&kh=10")
    assert str(caught.value) == (
        "source 'gpio' needs the optional dependency gpiod: "
        "install the extra: pip install 'minimeter-twin[gpio]'"
    )
