"""`MqttConfig`: the MQTT options of `minimeter run`, validated once at the boundary.

Theory of operation
-------------------
``--mqtt mqtt://[user[:pass]@]host[:port]`` (or ``mqtts://``) switches MQTT on; without
it :func:`config_from_args` returns None and nothing MQTT runs. The URL, the TLS files,
the password sources, the topic prefixes and the interval are checked here and turned
into one frozen :class:`MqttConfig`; every mistake is one :class:`~twin.errors.ConfigError`
naming the option as typed and what was expected. TLS files are loaded into a
throwaway context so a wrong file fails at start-up, not at the first connect.

The password comes from exactly one place: the URL, ``--mqtt-password-file`` or the
environment variable named by ``--mqtt-password-env`` (without any of them, the
``MINIMETER_MQTT_PASSWORD`` variable when set and the URL names a user). It is never
shown: the dataclass repr leaves it out and :attr:`MqttConfig.url` prints the URL
without it.
"""

from __future__ import annotations

import argparse
import math
import os
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from twin.errors import ConfigError
from twin.mqtt.topics import check_serial

DEFAULT_PREFIX = "minimeter"
DEFAULT_HA_PREFIX = "homeassistant"
DEFAULT_INTERVAL_S = 5.0
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 3600.0
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
PASSWORD_ENV = "MINIMETER_MQTT_PASSWORD"  # read when no other password source is given
MAX_TOPIC_PREFIX_CHARS = 200


@dataclass(frozen=True, slots=True)
class MqttConfig:
    """Where and what the twin publishes over MQTT."""

    host: str
    port: int = 1883
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None  # mqtts: trust these CAs (None: the system's)
    cert_file: Path | None = None  # client certificate (and key, unless key_file)
    key_file: Path | None = None
    prefix: str = DEFAULT_PREFIX
    interval_s: float = DEFAULT_INTERVAL_S  # wall seconds between two states of a meter
    ha_discovery: bool = True
    ha_prefix: str = DEFAULT_HA_PREFIX
    tasmota: bool = False
    # a command for a serial this twin does not serve gets a refusal (alone on the
    # prefix), instead of being left to another twin on the same prefix
    refuse_unknown: bool = False

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("--mqtt: the URL has no host; expected mqtt://host[:port]")
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"--mqtt: port {self.port}; expected 1..65535")
        if self.password is not None and not self.username:
            raise ConfigError(
                "--mqtt: a password needs a user name; expected mqtt://user@host with the "
                "password from the URL, --mqtt-password-file or --mqtt-password-env"
            )
        if not self.tls and (self.ca_file or self.cert_file or self.key_file):
            option = "--mqtt-ca" if self.ca_file else "--mqtt-cert/--mqtt-key"
            raise ConfigError(f"{option} needs an mqtts:// URL (TLS); got mqtt://")
        if self.key_file is not None and self.cert_file is None:
            raise ConfigError("--mqtt-key needs --mqtt-cert (the certificate it belongs to)")
        check_topic_prefix("--mqtt-prefix", self.prefix)
        check_topic_prefix("--ha-discovery-prefix", self.ha_prefix)
        if not (
            math.isfinite(self.interval_s) and MIN_INTERVAL_S <= self.interval_s <= MAX_INTERVAL_S
        ):
            raise ConfigError(
                f"--mqtt-interval {self.interval_s}: expected {MIN_INTERVAL_S:g}.."
                f"{MAX_INTERVAL_S:g} s"
            )
        if self.tls:
            self.ssl_context()  # a wrong CA, certificate or key fails here, at start-up

    def check_serials(self, serials: Iterable[str]) -> None:
        """Refuse serial numbers that cannot be topic levels (before anything starts)."""
        for serial in serials:
            check_serial(serial)

    @property
    def url(self) -> str:
        """The broker URL as shown in logs and the status: never with the password."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context (server verified, host name checked), or None for mqtt://."""
        if not self.tls:
            return None
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"--mqtt-ca {self.ca_file}: cannot load ({_reason(exc)}); expected a PEM file "
                "of CA certificates"
            ) from None
        if self.cert_file is not None:
            try:
                context.load_cert_chain(
                    str(self.cert_file), str(self.key_file) if self.key_file else None
                )
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"--mqtt-cert {self.cert_file}"
                    + (f" --mqtt-key {self.key_file}" if self.key_file else "")
                    + f": cannot load ({_reason(exc)}); expected a PEM certificate and its "
                    "unencrypted private key"
                ) from None
        return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def check_topic_prefix(option: str, prefix: str) -> None:
    """A topic prefix: levels of printable text, no wildcards, no empty level."""
    ok = (
        0 < len(prefix) <= MAX_TOPIC_PREFIX_CHARS
        and all(level for level in prefix.split("/"))
        and not any(c in prefix for c in "+#\0")
        and prefix.isprintable()
        and not prefix.startswith("$")
    )
    if not ok:
        raise ConfigError(
            f"{option} {prefix!r}: expected topic levels like 'minimeter' or 'lab/meters' "
            f"(1..{MAX_TOPIC_PREFIX_CHARS} chars, no '+', '#', leading '$', empty level or "
            "leading/trailing '/')"
        )


def parse_url(url: str) -> tuple[bool, str, int, str | None, str | None]:
    """(tls, host, port, user, password) of an mqtt:// or mqtts:// URL."""
    shown = url.split("@")[-1] if "@" in url else url  # never echo credentials
    expected = "expected mqtt://[user[:password]@]host[:port] or mqtts://..."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:  # its text may quote a password (user:pa/ss@host: port "pa")
        why = "no valid port (1..65535)" if "@" in url else str(exc)
        raise ConfigError(f"--mqtt {shown}: {why}; {expected}") from None
    if parts.scheme not in DEFAULT_PORTS:
        raise ConfigError(f"--mqtt {shown}: scheme {parts.scheme!r} unknown; {expected}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"--mqtt {shown}: a path or query is not allowed; {expected}")
    if not parts.hostname:
        raise ConfigError(f"--mqtt {shown}: no host; {expected}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return (
        parts.scheme == "mqtts",
        parts.hostname,
        DEFAULT_PORTS[parts.scheme] if port is None else port,
        user,
        password,
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The MQTT options of `minimeter run` (one argument group)."""
    g = parser.add_argument_group("MQTT (docs/mqtt.md)")
    a = g.add_argument
    a(
        "--mqtt",
        default=None,
        metavar="URL",
        help="publish to this broker: mqtt://[user[:pass]@]host[:port] or mqtts://... "
        "(default: off)",
    )
    a(
        "--mqtt-ca",
        type=Path,
        metavar="FILE",
        help="mqtts: CA certificates, PEM (default: the system's)",
    )
    a("--mqtt-cert", type=Path, metavar="FILE", help="mqtts: client certificate (default: none)")
    a(
        "--mqtt-key",
        type=Path,
        metavar="FILE",
        help="mqtts: its key (default: in the certificate file)",
    )
    a(
        "--mqtt-password-file",
        type=Path,
        metavar="FILE",
        help="read the broker password from this file's first line (default: none)",
    )
    a(
        "--mqtt-password-env",
        metavar="VAR",
        help=f"read the broker password from this environment variable (default: {PASSWORD_ENV} "
        "when the URL names a user and has no password)",
    )
    a(
        "--mqtt-prefix",
        default=DEFAULT_PREFIX,
        metavar="P",
        help=f"topic prefix (default: {DEFAULT_PREFIX})",
    )
    a(
        "--mqtt-interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        metavar="S",
        help="wall-clock seconds between two state messages of a meter, whatever --speed; a "
        f"fleet's meters are spread over it (default: {DEFAULT_INTERVAL_S:g} s)",
    )
    a(
        "--ha-discovery-prefix",
        default=DEFAULT_HA_PREFIX,
        metavar="P",
        help=f"Home Assistant discovery prefix (default: {DEFAULT_HA_PREFIX})",
    )
    a(
        "--no-ha-discovery",
        action="store_true",
        help="publish no Home Assistant discovery (default: off, discovery published)",
    )
    a(
        "--mqtt-tasmota",
        action="store_true",
        help="also publish tele/<serial>/SENSOR pulse counts as a Tasmota counter does "
        "(default: off)",
    )
    a(
        "--mqtt-refuse-unknown",
        action="store_true",
        help="this twin is alone on its prefix: refuse commands for serials it does not "
        "serve (default: off, left to another twin on the same prefix)",
    )


def config_from_args(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> MqttConfig | None:
    """The validated MQTT config, or None when ``--mqtt`` was not given."""
    environ = os.environ if environ is None else environ
    if args.mqtt is None:
        given = [
            option
            for option, value in (
                ("--mqtt-ca", args.mqtt_ca),
                ("--mqtt-cert", args.mqtt_cert),
                ("--mqtt-key", args.mqtt_key),
                ("--mqtt-password-file", args.mqtt_password_file),
                ("--mqtt-password-env", args.mqtt_password_env),
                ("--mqtt-tasmota", args.mqtt_tasmota),
                ("--mqtt-refuse-unknown", args.mqtt_refuse_unknown),
            )
            if value
        ]
        if given:
            raise ConfigError(f"{given[0]} needs --mqtt URL (MQTT is off without it)")
        return None
    tls, host, port, user, password = parse_url(args.mqtt)
    password = _password(args, password, environ, user)
    return MqttConfig(
        host=host,
        port=port,
        tls=tls,
        username=user,
        password=password,
        ca_file=args.mqtt_ca,
        cert_file=args.mqtt_cert,
        key_file=args.mqtt_key,
        prefix=args.mqtt_prefix,
        interval_s=args.mqtt_interval,
        ha_discovery=not args.no_ha_discovery,
        ha_prefix=args.ha_discovery_prefix,
        tasmota=args.mqtt_tasmota,
        refuse_unknown=args.mqtt_refuse_unknown,
    )


def _password(
    args: argparse.Namespace, from_url: str | None, environ: Mapping[str, str], user: str | None
) -> str | None:
    sources = [
        name
        for name, given in (
            ("the --mqtt URL", from_url is not None),
            ("--mqtt-password-file", args.mqtt_password_file is not None),
            ("--mqtt-password-env", args.mqtt_password_env is not None),
        )
        if given
    ]
    if len(sources) > 1:
        raise ConfigError(f"MQTT password given twice ({' and '.join(sources)}); expected one")
    if from_url is not None:
        return from_url
    if args.mqtt_password_file is not None:
        path = args.mqtt_password_file
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"--mqtt-password-file {path}: cannot read ({_reason(exc)}); expected a "
                "readable UTF-8 text file holding the password"
            ) from None
        if not lines or not lines[0]:
            raise ConfigError(f"--mqtt-password-file {path}: empty; expected the password")
        return lines[0]
    if args.mqtt_password_env is not None:
        name = args.mqtt_password_env
        if name not in environ:
            raise ConfigError(
                f"--mqtt-password-env {name}: the variable is not set; expected it to hold "
                "the broker password"
            )
        return environ[name]
    # The default variable only completes a URL that names a user.
    return environ.get(PASSWORD_ENV) if user else None
