"""A fleet file's text, read with bounds: size, encoding, nesting, YAML syntax.

`read_fleet_yaml` returns the parsed YAML of a fleet file for `twin.runtime.fleet` to
validate, or raises one ``ConfigError`` naming the file and what was expected: a file
over `MAX_FLEET_FILE_BYTES` is refused before it is parsed (a 100,000-meter file took
23 s and 400 MB to refuse), a file that is not UTF-8 or nests too deeply is refused
without a traceback (they raised ``UnicodeDecodeError`` and ``RecursionError``).
"""

from __future__ import annotations

from typing import Any

import yaml

from twin.errors import ConfigError

#: A fleet file's size at most: 10,000 meters (fleet.MAX_METERS) at 200 bytes each.
MAX_FLEET_FILE_BYTES = 2_000_000
_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present


def read_fleet_yaml(source: str, *, max_meters: int) -> Any:
    """The parsed YAML of the fleet file ``source``; ConfigError naming what is wrong."""
    try:
        with open(source, "rb") as fh:
            raw = fh.read(MAX_FLEET_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read fleet file ({exc.strerror})") from None
    if len(raw) > MAX_FLEET_FILE_BYTES:
        raise ConfigError(
            f"{source}: over {MAX_FLEET_FILE_BYTES} bytes; expected a fleet file of at most "
            f"{max_meters} meters"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{source}: not UTF-8 text (byte {exc.start}); expected a UTF-8 YAML fleet file"
        ) from None
    try:
        return yaml.load(text, Loader=_LOADER)
    except RecursionError:
        raise ConfigError(
            f"{source}: nested too deeply; expected a mapping with fleet, defaults, meters"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{source}{line}: not valid YAML ({problem})") from None
