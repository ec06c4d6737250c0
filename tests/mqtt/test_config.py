"""`minimeter run` MQTT options: validated once, one clear error naming the option."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import trustme

from twin.errors import ConfigError
from twin.mqtt.config import PASSWORD_ENV, MqttConfig, add_arguments, config_from_args


def _parse(*argv: str, environ: dict[str, str] | None = None) -> MqttConfig | None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return config_from_args(parser.parse_args(list(argv)), environ or {})


def test_mqtt_is_off_without_the_url() -> None:
    assert _parse() is None


def test_defaults() -> None:
    cfg = _parse("--mqtt", "mqtt://broker.lan")
    assert cfg == MqttConfig(host="broker.lan", port=1883)
    assert (cfg.prefix, cfg.interval_s, cfg.ha_discovery, cfg.ha_prefix, cfg.tasmota) == (
        "minimeter",
        5.0,
        True,
        "homeassistant",
        False,
    )
    tls = _parse("--mqtt", "mqtts://broker.lan")
    assert tls is not None and tls.tls and tls.port == 8883


def test_every_option() -> None:
    cfg = _parse(
        "--mqtt",
        "mqtt://user@[::1]:1884",
        "--mqtt-prefix",
        "lab/meters",
        "--mqtt-interval",
        "0.5",
        "--ha-discovery-prefix",
        "ha",
        "--no-ha-discovery",
        "--mqtt-tasmota",
        environ={PASSWORD_ENV: "s3cret"},
    )
    assert cfg is not None
    assert (cfg.host, cfg.port, cfg.username, cfg.password) == ("::1", 1884, "user", "s3cret")
    assert (cfg.prefix, cfg.interval_s, cfg.ha_prefix) == ("lab/meters", 0.5, "ha")
    assert not cfg.ha_discovery and cfg.tasmota
    assert cfg.url == "mqtt://user@[::1]:1884"


def test_the_password_is_never_shown() -> None:
    cfg = _parse("--mqtt", "mqtt://meter:p%40ss@broker")
    assert cfg is not None and cfg.password == "p@ss"
    assert "p@ss" not in repr(cfg) and "p@ss" not in cfg.url and "p%40ss" not in repr(cfg)


def test_password_from_a_file_or_a_named_variable(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("from-file\nignored\n")
    by_file = _parse("--mqtt", "mqtt://u@b", "--mqtt-password-file", str(secret))
    assert by_file is not None and by_file.password == "from-file"
    by_env = _parse("--mqtt", "mqtt://u@b", "--mqtt-password-env", "PW", environ={"PW": "from-env"})
    assert by_env is not None and by_env.password == "from-env"
    anonymous = _parse("--mqtt", "mqtt://b", environ={PASSWORD_ENV: "unused"})
    assert anonymous is not None and anonymous.password is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mqtt", "http://b"], "--mqtt http://b: scheme 'http' unknown"),
        (["--mqtt", "mqtt://"], "no host"),
        (["--mqtt", "mqtt://b:99999"], "--mqtt mqtt://b:99999: Port out of range"),
        (["--mqtt", "mqtt://b/topic"], "a path or query is not allowed"),
        (["--mqtt", "mqtt://:pw@b"], "a password needs a user name"),
        (["--mqtt", "mqtt://b", "--mqtt-ca", "x.pem"], "--mqtt-ca needs an mqtts:// URL"),
        (["--mqtt", "mqtts://b", "--mqtt-key", "k.pem"], "--mqtt-key needs --mqtt-cert"),
        (["--mqtt", "mqtts://b", "--mqtt-ca", "/nonexistent.pem"], "--mqtt-ca /nonexistent"),
        (["--mqtt", "mqtt://b", "--mqtt-prefix", "a/+/b"], "--mqtt-prefix 'a/+/b'"),
        (["--mqtt", "mqtt://b", "--mqtt-prefix", "a/"], "--mqtt-prefix 'a/'"),
        (["--mqtt", "mqtt://b", "--ha-discovery-prefix", "#"], "--ha-discovery-prefix '#'"),
        (["--mqtt", "mqtt://b", "--mqtt-interval", "0"], "--mqtt-interval 0.0: expected"),
        (["--mqtt", "mqtt://b", "--mqtt-interval", "nan"], "--mqtt-interval nan: expected"),
        (["--mqtt-tasmota"], "--mqtt-tasmota needs --mqtt URL"),
        (["--mqtt-ca", "ca.pem"], "--mqtt-ca needs --mqtt URL"),
        (
            ["--mqtt", "mqtt://u:a@b", "--mqtt-password-env", "X"],
            "password given twice (the --mqtt URL and --mqtt-password-env)",
        ),
        (["--mqtt", "mqtt://u@b", "--mqtt-password-env", "NOPE"], "--mqtt-password-env NOPE"),
        (["--mqtt", "mqtt://u@b", "--mqtt-password-file", "/nonexistent"], "cannot read"),
    ],
)
def test_bad_options_name_the_option(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        _parse(*argv)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_url_errors_never_echo_the_password() -> None:
    with pytest.raises(ConfigError) as err:
        _parse("--mqtt", "mqtt://u:topsecret@b:notaport")
    assert "topsecret" not in str(err.value)


def test_tls_files_are_loaded_at_start_up(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file, cert_file = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    ca.issue_cert("twin").private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cfg = _parse("--mqtt", "mqtts://b", "--mqtt-ca", str(ca_file), "--mqtt-cert", str(cert_file))
    assert cfg is not None and cfg.ssl_context() is not None
    with pytest.raises(ConfigError, match=r"--mqtt-cert .*: cannot load"):
        _parse("--mqtt", "mqtts://b", "--mqtt-cert", str(ca_file))  # a CA is no key pair
    with pytest.raises(ConfigError, match=r"--mqtt-ca .*: cannot load"):
        _parse("--mqtt", "mqtts://b", "--mqtt-ca", str(tmp_path))
