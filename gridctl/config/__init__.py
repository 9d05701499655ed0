"""Configuration: strategies.yaml parsed and validated."""

from gridctl.config.model import Config
from gridctl.config.validate import ConfigError, load

__all__ = ["Config", "ConfigError", "load"]
