"""The twin's one small exception tree. Third-party errors are translated at the edge."""

from __future__ import annotations


class TwinError(Exception):
    """Base of every error the twin reports to a user (printed, never a traceback)."""


class ConfigError(TwinError, ValueError):
    """Bad input: a profile, a fleet file, a CLI option. Names what and where."""


class ProfileError(ConfigError):
    """A profile that does not validate: message names the file, key path and expectation."""


class StoreError(TwinError):
    """The durable store cannot be used (corrupt, newer schema, unwritable)."""


class ServeError(TwinError):
    """A server cannot start (address in use, serial device missing)."""


class CommandRefused(TwinError):
    """A control command that is not applied: the reason names what was wrong and what
    was expected. A refused command changes nothing."""


class DeviceError(TwinError):
    """A pulse device cannot be used: bad URL, missing extra, unreachable or misbehaving."""
