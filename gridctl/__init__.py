"""gridctl: grid trading on crypto perpetual futures."""

__version__ = "0.1.0"
