"""Finding and reading profile files: the one module of the package that does IO.

A profile reference is a shipped name (``residential-day``: a YAML file in the
package ``twin.shipped_profiles``, installed from the top-level ``profiles/``
folder) or a path (anything with a path separator or a ``.yaml``/``.yml`` suffix).
:func:`load_profile` reads the bytes, checks they are UTF-8 text, and hands the
text to the parser with a :data:`~twin.loadprofile.levels.Reader` for the files a
profile names beside itself (CSV series); the parser never opens a file itself.
Messages label shipped files ``profiles/<name>.yaml`` and user files by the path
as given.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Final

from twin.errors import ProfileError
from twin.loadprofile.levels import Reader
from twin.loadprofile.reader import MAX_PROFILE_BYTES, parse_yaml
from twin.loadprofile.sampler import Profile
from twin.loadprofile.schema import parse_profile

SHIPPED_PACKAGE: Final = "twin.shipped_profiles"
#: The profile a twin plays when none is named: a residential day.
DEFAULT_PROFILE: Final = "default"
PROFILE_SUFFIXES: Final = (".yaml", ".yml")


def _shipped_dir() -> Traversable:
    return resources.files(SHIPPED_PACKAGE)


def shipped_names() -> list[str]:
    """Names of the shipped profiles, sorted."""
    return sorted(
        p.name[: -len(".yaml")] for p in _shipped_dir().iterdir() if p.name.endswith(".yaml")
    )


def shipped_profiles() -> list[Profile]:
    """Every shipped profile, loaded and validated, sorted by name."""
    return [load_profile(name) for name in shipped_names()]


def _is_path(ref: str | os.PathLike[str]) -> bool:
    """Whether a profile reference names a file rather than a shipped profile."""
    text = os.fspath(ref)
    return (
        isinstance(ref, os.PathLike)
        or os.sep in text
        or "/" in text
        or text.endswith(PROFILE_SUFFIXES)
    )


def load_profile(ref: str | os.PathLike[str]) -> Profile:
    """A shipped profile by name (``residential-day``) or a profile file by path."""
    text_ref = os.fspath(ref)
    if _is_path(ref):
        path = Path(text_ref)
        try:
            with path.open("rb") as fh:
                raw = fh.read(MAX_PROFILE_BYTES + 1)
        except OSError as exc:
            raise ProfileError(f"{text_ref}: cannot read: {exc.strerror or exc}") from None
        if len(raw) > MAX_PROFILE_BYTES:
            raise ProfileError(
                f"{text_ref}: over {MAX_PROFILE_BYTES} bytes; expected a profile file"
            )
        return _parse(raw, text_ref, text_ref, _beside_file(path))
    names = shipped_names()
    if text_ref not in names:
        raise ProfileError(
            f"profile {text_ref!r}: no such shipped profile; expected a path or one of "
            f"{', '.join(names)}"
        )
    folder = _shipped_dir()
    raw = folder.joinpath(f"{text_ref}.yaml").read_bytes()
    return _parse(raw, f"profiles/{text_ref}.yaml", text_ref, _beside_shipped(folder))


def _beside_file(path: Path) -> Reader:
    def read(name: str) -> tuple[str, str]:
        target = path.parent / name
        try:
            return target.read_text(encoding="utf-8"), str(target)
        except OSError as exc:
            raise ProfileError(f"cannot read {target}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ProfileError(f"cannot read {target}: not UTF-8 text") from None

    return read


def _beside_shipped(folder: Traversable) -> Reader:
    def read(name: str) -> tuple[str, str]:
        try:
            return folder.joinpath(name).read_text(encoding="utf-8"), f"profiles/{name}"
        except (OSError, UnicodeDecodeError) as exc:
            raise ProfileError(f"cannot read profiles/{name}: {exc}") from None

    return read


def _parse(raw: bytes, label: str, source: str, read: Reader) -> Profile:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProfileError(f"{label}: not a text file; expected UTF-8 YAML") from None
    if "\x00" in text:
        raise ProfileError(f"{label}: not a text file; expected UTF-8 YAML")
    spec = parse_profile(parse_yaml(text, label), label, read)
    return Profile(
        name=spec.name,
        description=spec.description,
        duration_s=spec.root.duration_us / 1e6,
        source=source,
        spec=spec,
    )
