"""Credentials while a config file loads: where its vault is, the Backpack key-pair check,
YAML errors that never quote a secret. Used by validate.load; the vault itself is gridctl/secrets/."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from gridctl.config.reader import Problem, Reader
from gridctl.config.yamlsrc import Path as YamlPath, Source, YamlSyntaxError, parse, read_text
from gridctl.secrets import vault as vault_files
from gridctl.secrets.keys import backpack_pair_problem
from gridctl.secrets.lookup import PREFIX as VAULT_PREFIX, VaultLookup
from gridctl.secrets.secret import Secret, UnloadedSecret

_SECRET_LINE = re.compile(r"^\s*(-\s*)?[\"']?(api_key|secret|password)[\"']?\s*:")


def yaml_problem(text: str, exc: YamlSyntaxError) -> Problem:
    """A YAML syntax error as a Problem; on a credential's line, quoted text is blanked out of the
    message (PyYAML quotes what it read, e.g. an alias name: that may be part of the secret)."""
    lines = text.splitlines()
    message = str(exc)
    if 0 < exc.line <= len(lines) and _SECRET_LINE.match(lines[exc.line - 1]):
        message = re.sub(r"'[^']{2,}'", "'…'", message) + " (on a credential's line; its text is not shown)"
    return Problem((), exc.line, f"not valid YAML: {message}")


def state_dir_value(src: Source, environ: Optional[dict[str, str]]) -> Optional[Path]:
    """The file's `state_dir:` (${ENV} expanded, ~ too), read without validating the rest."""
    raw = src.data.get("state_dir") if isinstance(src.data, dict) else None
    if not isinstance(raw, str) or not raw:
        return None
    value = Reader(src, environ).interpolate(raw, ("state_dir",))
    return Path(os.path.expanduser(value)) if value else None


def state_dir_of_file(path: Path, environ: Optional[dict[str, str]] = None) -> Optional[Path]:
    """`state_dir:` of a config file that may not be valid otherwise (None: unset, unreadable or not YAML)."""
    try:
        return state_dir_value(parse(read_text(path)), environ)
    except (OSError, YamlSyntaxError, UnicodeDecodeError):
        return None


def vault_references(path: Path) -> list[tuple[str, str]]:
    """(field path, entry name) of every `vault:NAME` credential in a config file, without
    validating it ([] when it is unreadable or not YAML)."""
    try:
        data = parse(read_text(path)).data
    except (OSError, YamlSyntaxError, UnicodeDecodeError):
        return []
    accounts = data.get("accounts") if isinstance(data, dict) else None
    out = []
    for name, account in (accounts.items() if isinstance(accounts, dict) else ()):
        for key in ("api_key", "secret", "password"):
            value = account.get(key) if isinstance(account, dict) else None
            if isinstance(value, str) and value.startswith(VAULT_PREFIX):
                out.append((f"accounts.{name}.{key}", value[len(VAULT_PREFIX):]))
    return out


def vault_lookup(src: Source, environ: Optional[dict[str, str]], mode: Optional[str], check_markets: bool,
                 state_dir: Optional[Path]) -> VaultLookup:
    """How this load reads `vault:NAME` fields (see validate.load for the modes)."""
    def where() -> Path:
        if state_dir is not None:
            return Path(state_dir)
        return vault_files.state_dir_for(state_dir_value(src, environ), environ)

    return VaultLookup(where, mode or ("open" if check_markets else "skip"), environ)


def check_key_pair(r: Reader, path: YamlPath, exchange: str, like: Optional[str],
                   secrets: dict[str, Optional[Secret]]) -> None:
    """Backpack (or paper like backpack): the secret's ED25519 public key must be the API key."""
    key, secret = secrets["api_key"], secrets["secret"]
    if "backpack" not in (exchange, like if exchange == "paper" else None) or key is None or secret is None:
        return
    if isinstance(key, UnloadedSecret) or isinstance(secret, UnloadedSecret):
        return  # the vault was not opened: listed with the unchecked entries
    problem = backpack_pair_problem(key.reveal(), secret.reveal())
    if problem is not None:
        r.error(path + (problem[0],), problem[1])
