"""Typed reads from parsed YAML that collect every problem with its path and line."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable, Optional

from gridctl.config.yamlsrc import Path, Source
from gridctl.core.partial import describe_ms
from gridctl.secrets.lookup import PREFIX as VAULT_PREFIX, LookupFailed, VaultLookup
from gridctl.secrets.secret import Secret

MAX_NUMBER = 10**15  # far beyond any price or balance; keeps tick arithmetic exact
_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the file."""

    path: Path
    line: int
    message: str

    def __str__(self) -> str:
        where = ".".join(self.path) if self.path else "(top level)"
        return f"{where} (line {self.line}): {self.message}"


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' when a close choice exists, else ''."""
    close = difflib.get_close_matches(str(word), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _kind(value: Any) -> str:
    """What YAML read, in words."""
    return ("true/false" if isinstance(value, bool) else "a list" if isinstance(value, list)
            else "a mapping" if isinstance(value, dict) else "text" if isinstance(value, str) else "a number")


def _show(value: Any) -> str:
    """A value as a message quotes it: a scalar as written, a list or mapping by its kind only
    (it may hold credentials: an account written as a list quotes its api_key and secret)."""
    if isinstance(value, (dict, list)):
        return _kind(value)
    return repr(value) if isinstance(value, str) else str(value)


class Reader:
    """Reads fields out of mappings; each mistake becomes a Problem, never an exception."""

    def __init__(self, src: Source, environ: Optional[dict[str, str]] = None,
                 vault: Optional[VaultLookup] = None):
        self.src = src
        self.env = os.environ if environ is None else environ
        self.vault = vault  # fills `vault:NAME` secret fields (None: they are refused)
        self.problems: list[Problem] = []
        for path, line in src.duplicates:
            self.problems.append(Problem(path, line, "appears twice in the same mapping"))

    def error(self, path: Path, message: str) -> None:
        """Record a problem at path."""
        self.problems.append(Problem(path, self.src.line(path), message))

    def mapping(self, value: Any, path: Path, allowed: Optional[Iterable[str]] = None,
                elsewhere: Optional[dict[str, str]] = None) -> dict:
        """value as a dict ({} with a problem if it is not); flags unknown keys.

        `elsewhere` maps keys that are valid one level up or down to where they belong
        ("risk:"), so a key written in the wrong mapping says where to move it instead
        of only "unknown key" (which reads as a typo and leaves the trader guessing).
        """
        if value is None:
            return {}
        if not isinstance(value, dict):
            # the kind only, never the value: a credential indented one level too little
            # reads as an entry (accounts.api_key) whose value is the secret
            self.error(path, f"must be a mapping of keys to values, got {_kind(value)}")
            return {}
        if allowed is not None:
            allowed = list(allowed)
            for key in value:
                if key not in allowed:
                    hint = (f" (it belongs under {elsewhere[key]})" if elsewhere and key in elsewhere
                            else did_you_mean(key, allowed))
                    self.error(path + (key,), f"unknown key '{key}'{hint}")
        return value

    def interpolate(self, value: Any, path: Path) -> Any:
        """Replace ${VAR} with the environment's value; a missing variable is a problem."""
        if not isinstance(value, str) or "${" not in value:
            return value

        def sub(m: re.Match) -> str:
            if m.group(1) not in self.env:
                self.error(path, f"environment variable {m.group(1)} is not set")
                return ""
            return self.env[m.group(1)]

        return _ENV.sub(sub, value)

    def _given(self, m: dict, path: Path, key: str, required: bool) -> tuple[Path, Any]:
        """(path of the field, its interpolated value or None when absent; absent+required is a problem)."""
        p = path + (key,)
        if m.get(key) is None:
            if required:
                self.error(p, "is required")
            return p, None
        return p, self.interpolate(m[key], p)

    def secret(self, m: dict, path: Path, key: str, required: bool = False) -> Optional[Secret]:
        """A credential: text, `${ENV_VAR}` or `vault:NAME`. No message ever shows its value."""
        p = path + (key,)
        raw = m.get(key)
        if raw is None:
            if required:
                self.error(p, "is required")
            return None
        if not isinstance(raw, str):
            self.error(p, f"must be text in quotes: the value, ${{ENV_VAR}} or vault:NAME (YAML read "
                       f"{_kind(raw)} here; the value is not shown)")
            return None
        if raw.startswith(VAULT_PREFIX):
            if self.vault is None:
                self.error(p, "vault:NAME is not read here")
                return None
            try:
                return self.vault.secret(raw[len(VAULT_PREFIX):], ".".join(p))
            except LookupFailed as exc:
                if exc.message:
                    self.error(p, exc.message)
                return None
        variables = _ENV.findall(raw)
        before = len(self.problems)
        value = self.interpolate(raw, p)
        if len(self.problems) > before:
            return None
        if not value:
            self.error(p, "is empty" + (f" (environment variable {', '.join(variables)} is set but empty)"
                                        if variables else ""))
            return None
        return Secret(value, origin=f"env:{variables[0]}" if len(variables) == 1 else "env" if variables else "yaml")

    def text(self, m: dict, path: Path, key: str, required: bool = False,
             default: Optional[str] = None) -> Optional[str]:
        """A string field."""
        p, value = self._given(m, path, key, required)
        if value is None:
            return default
        if isinstance(value, (dict, list, bool)):
            self.error(p, f"must be text, got {_show(value)}")
            return default
        return str(value)

    def number(self, m: dict, path: Path, key: str, required: bool = False,
               default: Optional[Decimal] = None, positive: bool = False,
               minimum: Optional[Decimal] = None) -> Optional[Decimal]:
        """A decimal field (exact: YAML floats never pass through float)."""
        p, raw = self._given(m, path, key, required)
        if raw is None:
            return default
        try:
            if isinstance(raw, bool):
                raise InvalidOperation
            value = Decimal(str(raw).strip())
            if not value.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            self.error(p, f"must be a number, got {_show(raw)}")
            return default
        if abs(value) > MAX_NUMBER:
            self.error(p, f"must be at most {MAX_NUMBER:,}, got {raw}")
            return default
        if positive and value <= 0:
            self.error(p, f"must be greater than 0, got {value}")
            return default
        if minimum is not None and value < minimum:
            self.error(p, f"must be at least {minimum}, got {value}")
            return default
        return value

    def integer(self, m: dict, path: Path, key: str, required: bool = False,
                default: Optional[int] = None, minimum: Optional[int] = None,
                maximum: Optional[int] = None) -> Optional[int]:
        """A whole-number field."""
        p, raw = self._given(m, path, key, required)
        if raw is None:
            return default
        try:
            if isinstance(raw, bool):
                raise ValueError
            d = Decimal(str(raw).strip())
            if d != d.to_integral_value():
                raise ValueError
            value = int(d)
        except (ValueError, InvalidOperation):
            self.error(p, f"must be a whole number, got {_show(raw)}")
            return default
        if minimum is not None and value < minimum:
            self.error(p, f"must be at least {minimum}, got {value}")
            return default
        if maximum is not None and value > maximum:
            self.error(p, f"must be at most {maximum}, got {value}")
            return default
        return value

    def boolean(self, m: dict, path: Path, key: str, default: bool = False) -> bool:
        """A true/false field."""
        p = path + (key,)
        if m.get(key) is None:
            return default
        if not isinstance(m[key], bool):
            self.error(p, f"must be true or false, got {_show(m[key])}")
            return default
        return m[key]

    def choice(self, m: dict, path: Path, key: str, choices: Iterable[str],
               default: Optional[str] = None, required: bool = False) -> Optional[str]:
        """One of a fixed set of words."""
        choices = list(choices)
        value = self.text(m, path, key, required=required, default=None)
        if value is None:
            return default
        if value not in choices:
            self.error(path + (key,), f"must be one of {', '.join(choices)}, got {_show(value)}"
                       f"{did_you_mean(value, choices)}")
            return default
        return value

    def duration(self, m: dict, path: Path, key: str, default: Optional[int], minimum_ms: int = 1000,
                 maximum_ms: int = 30 * 86_400_000) -> Optional[int]:
        """A duration with its unit (90s, 10m, 1h; also ms and d) in ms; `off`, false or 0 → None
        (switched off). Absent or null → `default`."""
        p, raw = self._given(m, path, key, False)
        if raw is None:
            return default
        if raw is False or raw == 0 or (isinstance(raw, str) and raw.strip().lower() in ("off", "0")):
            return None
        match = _DURATION.fullmatch(raw.strip()) if isinstance(raw, str) else None
        if match is None:
            self.error(p, f"must be a duration with its unit like 90s, 10m or 1h (or off), got {_show(raw)}")
            return default
        ms = int(Decimal(match.group(1)) * _UNIT_MS[match.group(2)])
        if not minimum_ms <= ms <= maximum_ms:
            self.error(p, f"must be between {describe_ms(minimum_ms)} and {describe_ms(maximum_ms)}, got {raw}")
            return default
        return ms


_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

