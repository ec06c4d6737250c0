"""`HttpConfig`: the ``--http`` options of `minimeter run`, validated once at the boundary.

The HTTP server is off unless ``--http [HOST:]PORT`` is given; a bare port listens on
loopback. A bearer token (``--http-token`` or ``--http-token-file``) guards every write
(POST/DELETE); reads stay open. Writes follow the twin's own locks (``--allow-writes``,
``--allow-energy-reset``), which `twin.control` checks for every channel alike.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

from twin.errors import ConfigError
from twin.modbus.security import is_loopback

DEFAULT_HOST = "127.0.0.1"
#: The stream's fastest and slowest frame intervals a client may ask for (s).
MIN_STREAM_INTERVAL_S = 0.05
MAX_STREAM_INTERVAL_S = 60.0
DEFAULT_STREAM_INTERVAL_S = 0.5
#: Events kept per stream client between two frames; older ones are dropped (and counted).
STREAM_EVENTS_MAX = 256
MAX_STREAM_CLIENTS = 1000
MAX_BODY_BYTES = 64 * 1024
MAX_TOKEN_CHARS = 4096


@dataclass(frozen=True, slots=True)
class HttpConfig:
    """Where the HTTP API and front panel listen, and how they answer."""

    host: str = DEFAULT_HOST
    port: int = 8080  # 0: an ephemeral port
    token: str | None = field(default=None, repr=False)  # bearer token for writes; None: none
    stream_interval_s: float = DEFAULT_STREAM_INTERVAL_S  # a client's default frame interval
    max_stream_clients: int = 200

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("--http: empty host; expected [HOST:]PORT, e.g. 8080")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"--http port {self.port}: expected 0..65535")
        if self.token is not None and not (
            1 <= len(self.token) <= MAX_TOKEN_CHARS
            and self.token.isascii()
            and self.token.isprintable()
            and " " not in self.token
        ):
            raise ConfigError(
                f"--http-token: expected 1..{MAX_TOKEN_CHARS} printable ASCII characters "
                "without spaces"
            )
        interval = self.stream_interval_s
        if not (
            math.isfinite(interval) and MIN_STREAM_INTERVAL_S <= interval <= MAX_STREAM_INTERVAL_S
        ):
            raise ConfigError(
                f"--http-interval {interval}: expected "
                f"{MIN_STREAM_INTERVAL_S:g}..{MAX_STREAM_INTERVAL_S:g} s"
            )
        if not 1 <= self.max_stream_clients <= MAX_STREAM_CLIENTS:
            raise ConfigError(
                f"--http-max-streams {self.max_stream_clients}: expected 1..{MAX_STREAM_CLIENTS}"
            )

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"


def parse_listen(text: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:8080`` for IPv6) -> (host, port); loopback by default."""
    host, sep, port_text = text.strip().rpartition(":")
    if not sep:
        host = DEFAULT_HOST
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(
            f"--http {text!r}: expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080"
        ) from None
    if not host:
        raise ConfigError(f"--http {text!r}: empty host; expected [HOST:]PORT")
    return host, port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("HTTP API and front panel")
    g.add_argument(
        "--http",
        default=None,
        metavar="[HOST:]PORT",
        help="serve the JSON API, live stream, /metrics and the front panel; host 127.0.0.1 "
        "(default: off)",
    )
    g.add_argument(
        "--http-token", default=None, help="bearer token required for HTTP writes (default: none)"
    )
    g.add_argument(
        "--http-token-file",
        type=Path,
        default=None,
        help="read the bearer token from a file (default: none)",
    )
    g.add_argument(
        "--http-interval",
        type=float,
        default=DEFAULT_STREAM_INTERVAL_S,
        help=f"live stream frame interval (default: {DEFAULT_STREAM_INTERVAL_S:g} s)",
    )
    g.add_argument(
        "--http-max-streams",
        type=int,
        default=200,
        help="open live streams at most; more are refused with 503 (default: %(default)s)",
    )


def config_from_args(args: argparse.Namespace) -> HttpConfig | None:
    """The HTTP part's config, or None when ``--http`` is not given."""
    token: str | None = args.http_token
    if args.http_token_file is not None:
        if token is not None:
            raise ConfigError("--http-token and --http-token-file exclude each other")
        try:
            token = Path(args.http_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ConfigError(f"--http-token-file {args.http_token_file}: {reason}") from None
        if not token:
            raise ConfigError(f"--http-token-file {args.http_token_file}: the file is empty")
    if args.http is None:
        if token is not None:
            raise ConfigError("--http-token needs --http [HOST:]PORT")
        return None
    host, port = parse_listen(args.http)
    return HttpConfig(
        host=host,
        port=port,
        token=token,
        stream_interval_s=args.http_interval,
        max_stream_clients=args.http_max_streams,
    )


def exposure_warning(config: HttpConfig, *, allow_writes: bool) -> str | None:
    """A warning line when the API takes commands beyond loopback without a token (it has
    no TLS of its own: the token is what guards it)."""
    if config.token is not None or is_loopback(config.host) or not allow_writes:
        return None
    return (
        f"warning: HTTP API on {config.host}:{config.port} with writes on and no "
        "--http-token: anyone who can reach this port can command the meters; bind "
        "127.0.0.1 (the default), give --http-token-file, or put it behind a firewall or "
        "a TLS proxy (docs/security.md)"
    )
