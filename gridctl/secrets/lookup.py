"""`vault:NAME` fields during one config load: the vault opened at most once, problems as sentences."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Callable, Mapping, Optional

from gridctl.secrets.secret import Secret, UnloadedSecret
from gridctl.secrets.vault import OpenVault, Vault, VaultError, VaultLocked, check_name

PREFIX = "vault:"
MODES = ("open", "try", "skip")


class LookupFailed(Exception):
    """The field cannot be filled; `message` says why (empty: already said at an earlier field)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class VaultLookup:
    """Fills `vault:NAME` fields from the vault of a state dir.

    Modes: `open` (the worker, the supervisor, `start`): every reference must be read,
    a locked vault is a problem; `try` (`validate`): read them when a passphrase is at
    hand, else only check that each entry exists (names are readable without it) and
    leave the values unchecked (`unchecked` lists them, each field holds an
    UnloadedSecret); `skip` (read-only commands, `plan`): never open the vault.
    """

    def __init__(self, state_dir: Callable[[], Path], mode: str = "open",
                 environ: Optional[Mapping[str, str]] = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self._state_dir, self.mode, self.environ = state_dir, mode, environ
        self.unchecked: list[tuple[str, str]] = []  # (field, entry name) left unread
        self._open: Optional[OpenVault] = None
        self._failed: Optional[str] = None  # why the vault could not be opened (said once)
        self._locked = False
        self.vault: Optional[Vault] = None

    def secret(self, name: str, where: str) -> Secret:
        """The value of entry `name` for the field `where` (a dotted path); raises LookupFailed."""
        ref = PREFIX + name
        problem = check_name(name)
        if problem:
            raise LookupFailed(f"{ref}: {problem}")
        if self.vault is None:
            self.vault = Vault.of_state_dir(self._state_dir())
        if self.mode == "skip":
            self.unchecked.append((where, name))
            return UnloadedSecret(name, where)
        if not self.vault.exists():
            raise LookupFailed(f"{ref}: there is no vault at {self.vault.path}; add the secret with "
                               f"`gridctl secrets set {name}`")
        vault = self._opened()
        if vault is None:
            if self._locked and self.mode == "try":
                if name not in self._names():  # the names are readable without the passphrase
                    raise LookupFailed(self._missing(name))
                self.unchecked.append((where, name))
                return UnloadedSecret(name, where)
            message, self._failed = self._failed or "", ""
            raise LookupFailed(message)
        try:
            value = vault.get(name)
        except VaultError as exc:
            raise LookupFailed(str(exc)) from None
        if value is None:
            raise LookupFailed(self._missing(name))
        return value

    def _names(self) -> list[str]:
        assert self.vault is not None
        try:
            return self.vault.names()
        except VaultError as exc:
            raise LookupFailed(str(exc)) from None

    def _missing(self, name: str) -> str:
        """"vault:NAME is not in the vault …", with a did-you-mean for a typo."""
        assert self.vault is not None
        close = difflib.get_close_matches(name, self._names(), n=1, cutoff=0.8)  # a typo, not another key
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{PREFIX}{name} is not in the vault {self.vault.path}{hint}; add it with `gridctl secrets set {name}`"

    def _opened(self) -> Optional[OpenVault]:
        if self._open is not None or self._failed is not None:
            return self._open
        assert self.vault is not None
        try:
            self._open = self.vault.unlock(environ=self.environ)
        except VaultLocked as exc:
            self._locked = True
            self._failed = str(exc)
        except VaultError as exc:
            self._failed = str(exc)
        return self._open
