"""Topics and payloads (pure): field names from the register map, Home Assistant
discovery complete for each entity kind, Tasmota counters, command messages."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from twin.core import (
    ClearPulseCounts,
    CountsCleared,
    DemandClosed,
    ErrorRaised,
    MeterConfig,
    MeterCore,
    MeterModel,
    PowerRestored,
    PulseEdges,
    ResetMaxDemand,
    SampleBlock,
)
from twin.errors import ConfigError
from twin.mqtt import topics
from twin.mqtt.commands import parse_payload
from twin.registers import BY_NAME, EXTRA_DEFAULTS, Identity, TwinHealth, field_names

# What Home Assistant's MQTT discovery needs per entity kind (names as in the HA docs:
# https://www.home-assistant.io/integrations/sensor.mqtt/ and binary_sensor.mqtt/,
# "Using device discovery" / device registry). state_topic is required by both platforms;
# unique_id and device.identifiers put the entity on a device; availability makes
# the twin's last will reach the entity.
HA_COMMON = {"name", "unique_id", "state_topic", "value_template", "device", "availability"}
HA_REQUIRED = {
    "sensor": HA_COMMON,
    "binary_sensor": HA_COMMON | {"payload_on", "payload_off", "device_class"},
}
HA_DEVICE = {"identifiers", "manufacturer", "model", "name", "serial_number", "sw_version"}
# HA's unit rules per sensor device class (the sensor docs' table), for the classes used.
HA_UNITS = {
    "energy": {"Wh", "kWh", "MWh"},
    "power": {"W", "kW"},
    "voltage": {"V", "mV"},
    "current": {"A", "mA"},
    "frequency": {"Hz", "kHz"},
    "power_factor": {None, "%"},
}


def _meter(model: str = "MMD-200A", serial: str = "MM00000042") -> tuple[MeterCore, Identity]:
    config = MeterConfig(model=MeterModel.parse(model), serial_number=serial)
    return MeterCore(config), Identity.from_config(config)


def _discovery(model: str = "MMD-200A") -> list[tuple[str, dict[str, object]]]:
    _, identity = _meter(model)
    return topics.discovery_messages(
        identity, prefix="minimeter", ha_prefix="homeassistant", availability=["a/b"]
    )


def test_state_keys_are_the_register_names_and_values_what_the_snapshot_says() -> None:
    core, _ = _meter()
    core.advance(SampleBlock.build(600, 1.0, voltage_v=120.0, current_a=(10.0, 5.0)))
    snap = core.snapshot()
    payload = topics.state_payload(snap, meter_time_s=600.0, unix_time_s=1.5)
    assert set(field_names()) <= set(payload)  # every block A register, by its map name
    assert payload["energy_delivered_wh"] == snap.energy_delivered_wh > 0
    assert payload["power_w"] == snap.power_w
    assert payload["meter_time_s"] == 600.0 and payload["unix_time_s"] == 1.5
    for name, default in EXTRA_DEFAULTS.items():  # not in the snapshot: what the map reads
        assert payload[name] == (None if math.isnan(default) else default)
    json.loads(topics.encode(payload))  # strict JSON


def test_the_twin_health_goes_by_name_but_never_says_mqtt_disconnected() -> None:
    core, _ = _meter()
    word = TwinHealth.STORE_FAILING | TwinHealth.MQTT_DISCONNECTED
    payload = topics.state_payload(
        core.snapshot(), meter_time_s=0.0, unix_time_s=0.0, extra={"twin_health": int(word)}
    )
    # a state goes out over MQTT: the broker is connected whatever the word said before
    assert payload["twin_health"] == TwinHealth.STORE_FAILING
    assert payload["twin_conditions"] == ["store_failing"]
    assert b'"twin_health":1,' in topics.encode(payload)


def test_non_finite_numbers_are_null() -> None:
    core, _ = _meter()
    payload = topics.state_payload(core.snapshot(), meter_time_s=0.0, unix_time_s=0.0)
    assert math.isnan(core.snapshot().power_factor_l1)
    assert payload["power_factor_l1"] is None
    assert b"NaN" not in topics.encode(payload)


def test_events_topics_and_payloads() -> None:
    core, _ = _meter()
    core.advance(SampleBlock.build(60, 1.0, voltage_v=120.0, current_a=10.0))
    events = core.apply(ResetMaxDemand()) + core.apply(ClearPulseCounts())
    samples = [
        ErrorRaised(time_s=3.0, code=5, name="reversed_ct"),
        PowerRestored(time_s=1.0, power_up_count=2),
        DemandClosed(time_s=300.0, subinterval_kw=1.0, demand_kw=0.5, demand_max_kw=0.7),
        *events,
    ]
    kinds = [topics.event_kind(e) for e in samples]
    assert kinds == [
        "error_raised",
        "power_restored",
        "demand_closed",
        "max_demand_reset",
        "counts_cleared",
    ]
    cleared = topics.event_payload(samples[-1], serial="MM1", meter_time_s=60.0)
    assert isinstance(samples[-1], CountsCleared)
    assert cleared == {
        "event": "counts_cleared",
        "serial_number": "MM1",
        "meter_time_s": 60.0,
        "time_s": samples[-1].time_s,
        "what": "pulses",
    }
    assert topics.event_topic("p", "MM1", "power_lost") == "p/MM1/event/power_lost"
    edges = PulseEdges("10", time_s=np.zeros(0), closed=np.zeros(0, dtype=bool))
    assert topics.event_kind(edges) is None
    with pytest.raises(ValueError, match="not published"):
        topics.event_payload(edges, serial="MM1", meter_time_s=0.0)


def test_discovery_carries_what_home_assistant_requires_per_entity_kind() -> None:
    messages = _discovery()
    assert {t.split("/")[1] for t, _ in messages} == set(HA_REQUIRED)
    for topic, config in messages:
        component = topic.split("/")[1]
        assert topic.startswith(f"homeassistant/{component}/minimeter_MM00000042/")
        assert topic.endswith("/config")
        missing = HA_REQUIRED[component] - set(config)
        assert not missing, f"{topic}: missing {missing}"
        device = config["device"]
        assert isinstance(device, dict) and set(device) >= HA_DEVICE
        assert device["identifiers"] == ["minimeter_MM00000042"]
        assert device["model"] == "MMD-200A" and device["serial_number"] == "MM00000042"
        assert config["state_topic"] == "minimeter/MM00000042/state"
        assert config["availability"] == [{"topic": "a/b"}]
        if config.get("device_class") in HA_UNITS and component == "sensor":
            assert config.get("unit_of_measurement") in HA_UNITS[str(config["device_class"])]
        if config.get("device_class") == "energy":
            assert config["state_class"] == "total_increasing"
        template = str(config["value_template"])
        assert template.startswith("{{") and template.endswith("}}")


def test_discovery_covers_the_issue_list_with_units_from_the_register_map() -> None:
    by_id = {str(c["unique_id"]).removeprefix("minimeter_MM00000042_"): c for _, c in _discovery()}
    for key in (
        "energy_delivered_wh",
        "energy_received_wh",
        "power_w",
        "voltage_l1_v",
        "current_l1_a",
        "power_factor_l1",
        "frequency_hz",
        "demand_kw",
        "demand_max_kw",
        "error_code",
        "pulses_10wh",
        "pulses_100wh",
        "pulses_1000wh",
    ):
        assert key in by_id, key
        unit = BY_NAME[key].unit
        expected = unit if unit not in ("", "count") else None
        assert by_id[key].get("unit_of_measurement") == expected
    assert by_id["energy_delivered_wh"]["unit_of_measurement"] == "Wh"
    assert by_id["demand_kw"]["unit_of_measurement"] == "kW"
    assert {"reverse_arrow", "unpowered"} <= set(by_id)
    assert len(by_id) == len(_discovery())  # unique ids are unique


def test_single_element_meters_have_no_l2_entities() -> None:
    ids = {str(c["unique_id"]) for _, c in _discovery("MMS-100A")}
    assert not [i for i in ids if "l2" in i]
    assert "minimeter_MM00000042_power_l1_w" in ids


def test_unique_ids_are_stable_across_runs() -> None:
    assert [c["unique_id"] for _, c in _discovery()] == [c["unique_id"] for _, c in _discovery()]


def test_tasmota_counters_are_the_pulse_outputs() -> None:
    core, _ = _meter()
    core.advance(SampleBlock.build(3600, 1.0, voltage_v=120.0, current_a=20.0))
    snap = core.snapshot()
    payload = topics.tasmota_payload(snap, "2026-01-01T00:00:00")
    assert payload == {
        "Time": "2026-01-01T00:00:00",
        "COUNTER": {"C1": snap.pulses_10wh, "C2": snap.pulses_100wh, "C3": snap.pulses_1000wh},
    }
    assert snap.pulses_10wh > 0
    assert topics.tasmota_topic("MM1") == "tele/MM1/SENSOR"


@pytest.mark.parametrize(
    ("topic", "parsed"),
    [
        ("minimeter/MM1/cmd/clear_pulses", ("MM1", "clear_pulses")),
        ("minimeter/all/cmd/set_speed", ("all", "set_speed")),
        ("minimeter/MM1/cmd/result", None),
        ("minimeter/MM1/state", None),
        ("minimeter/MM1/cmd/x/y", None),
        ("other/MM1/cmd/clear_pulses", None),
    ],
)
def test_command_topics(topic: str, parsed: tuple[str, str] | None) -> None:
    assert topics.parse_command_topic("minimeter", topic) == parsed


def test_a_prefix_with_levels() -> None:
    assert topics.parse_command_topic("lab/a", "lab/a/MM1/cmd/x") == ("MM1", "x")
    assert topics.command_filter("lab/a") == "lab/a/+/cmd/+"


@pytest.mark.parametrize("serial", ["MM/1", "MM+1", "all", "", "MM 1", "x" * 33])
def test_serials_that_cannot_be_topic_levels_are_refused(serial: str) -> None:
    with pytest.raises(ConfigError, match="cannot be a topic level"):
        topics.check_serial(serial)


@pytest.mark.parametrize(
    ("payload", "correlation", "expected"),
    [
        (b"", None, ({}, None, None)),
        (b'{"correlation_id": "a", "for_s": 2}', None, ({"for_s": 2}, "a", None)),
        (b'{"correlation_id": 7}', b"ignored", ({}, "7", None)),
        (b"{}", b"corr", ({}, "corr", None)),
        (b'{"id": 3}', None, ({"id": 3}, None, None)),  # clear_faults' own "id"
    ],
)
def test_command_payloads(
    payload: bytes, correlation: bytes | None, expected: tuple[object, ...]
) -> None:
    assert parse_payload(payload, correlation) == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{", "not JSON"),
        (b"\xff", "not JSON"),
        (b"3", "int; expected a JSON object"),
        (b'{"correlation_id": true}', "correlation_id: expected a string or an integer"),
    ],
)
def test_bad_command_payloads_have_a_reason(payload: bytes, reason: str) -> None:
    _, _, error = parse_payload(payload, None)
    assert error is not None and reason in error
