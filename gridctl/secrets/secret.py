"""A credential that never shows itself: not in repr, str, f-strings, JSON or pickles."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

MASK = "***"


class SecretNotLoaded(Exception):
    """A `vault:NAME` field was not read (its value is needed, but the vault stayed locked)."""


class Secret:
    """An API key, secret or passphrase. `reveal()` is the only way to its text.

    Not a `str`: a str subclass goes into json.dumps, %-formatting and string
    concatenation as its real text, so one careless log line or export would leak it.
    This prints as ***, refuses pickling and is not JSON serialisable (fail closed).
    `origin` says where it came from (`yaml`, `env:VAR`, `vault:NAME`); it is not secret.
    """

    __slots__ = ("_value", "origin")

    def __init__(self, value: str, origin: str = "yaml"):
        if not isinstance(value, str):
            raise TypeError("a Secret holds text")
        object.__setattr__(self, "_value", value)
        object.__setattr__(self, "origin", origin)

    def reveal(self) -> str:
        """The real value, for the exchange client (and the signature check) only."""
        return self._value

    def __setattr__(self, name: str, value: Any) -> NoReturn:
        raise AttributeError("a Secret is immutable")

    def __repr__(self) -> str:
        return "Secret('***')"

    def __str__(self) -> str:
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __copy__(self) -> "Secret":
        return self

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret is never pickled")


class UnloadedSecret(Secret):
    """A `vault:NAME` field whose vault was not opened (e.g. `validate` without a passphrase).

    It knows its name, not its value; `reveal()` raises SecretNotLoaded with a clear reason.
    """

    __slots__ = ("where",)

    def __init__(self, name: str, where: str):
        super().__init__("", origin=f"vault:{name}")
        object.__setattr__(self, "where", where)

    def reveal(self) -> str:
        raise SecretNotLoaded(f"{self.where}: {self.origin} was not read: the vault was not opened "
                              f"(set GRIDCTL_PASSPHRASE)")

    def __bool__(self) -> bool:
        return True  # the field is given; only its value is unknown here

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UnloadedSecret) and other.origin == self.origin

    def __hash__(self) -> int:
        return hash((UnloadedSecret, self.origin))
