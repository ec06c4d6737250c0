"""minimeter-twin: a hardware-in-the-loop digital twin of the Leviton Mini Meter."""

__version__ = "0.1.0"
