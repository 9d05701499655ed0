"""`gridctl secrets set/list/rm`: the encrypted vault of the state dir (gridctl/secrets/vault.py)."""

from __future__ import annotations

import difflib
import sys
import os

from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import click
from tabulate import tabulate

from gridctl.cli import group
from gridctl.cli.common import EXIT_RUNTIME, EXIT_USAGE, AppContext, config_option, fail, json_option, print_json
from gridctl.config.model import Config
from gridctl.config.credentials import state_dir_of_file, vault_references
from gridctl.secrets.vault import Vault, VaultError, VaultLocked, WrongPassphrase, check_name


def _vault(app: AppContext, config_path: str) -> Vault:
    """The vault of the state dir the other commands use (--state-dir, GRIDCTL_STATE_DIR, the
    config's state_dir, the one `start` remembered, the default)."""
    config_dir = state_dir_of_file(Path(config_path)) if os.path.isfile(config_path) else None
    state_dir = app.state_dir(SimpleNamespace(state_dir=config_dir))  # type: ignore[arg-type]
    return Vault.of_state_dir(state_dir.resolve())


def unchecked_secret_notes(config: Config) -> list[str]:
    """What `validate` says when it could not open the vault: which fields it did not check."""
    if not config.unchecked_secrets:
        return []
    fields = ", ".join(f"{where} (vault:{name})" for where, name in config.unchecked_secrets)
    return [f"vault entries not checked: {fields}: the vault {config.vault_path} was not opened "
            f"(no passphrase: set GRIDCTL_PASSPHRASE, or run in a terminal to be asked); the entries exist, "
            f"their values (and a Backpack key pair among them) are checked when the passphrase is given"]


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _read_value(name: str, from_stdin: bool) -> str:
    """The value: a hidden prompt typed twice at a terminal, else stdin (one trailing newline dropped)."""
    if from_stdin or not group.interactive():
        return sys.stdin.read().rstrip("\r\n")
    return click.prompt(f"Value of {name}", hide_input=True, confirmation_prompt=True, err=True)


@group.cli.group()
def secrets() -> None:
    """Keep API keys and secrets in the encrypted vault of the state dir.

    The vault is <state dir>/secrets.vault (owner-only), each value sealed under a
    key derived from a passphrase (GRIDCTL_PASSPHRASE, GRIDCTL_PASSPHRASE_FILE, or
    asked for at a terminal). In the YAML, `api_key: vault:NAME` (also `secret:` and
    `password:`) reads the entry NAME. Names are listed without the passphrase;
    values are never printed.

    \b
    Example:
        gridctl secrets set binance-key
        gridctl secrets list
    """


@secrets.command("set")
@config_option
@click.argument("name")
@click.option("--stdin", "from_stdin", is_flag=True,
              help="Read the value from stdin (the default when stdin is not a terminal).")
@json_option
@click.pass_obj
def set_secret(app: AppContext, config_path: str, name: str, from_stdin: bool, as_json: bool) -> None:
    """Store the secret NAME in the vault (replacing it if it is there).

    At a terminal the value is asked for twice, hidden; otherwise (or with --stdin)
    it is read from stdin, one trailing newline dropped. A new vault asks for its
    passphrase twice. Then write `vault:NAME` in the YAML where the value goes.

    \b
    Example:
        gridctl secrets set binance-key
        printf %s "$KEY" | GRIDCTL_PASSPHRASE=... gridctl secrets set binance-key --stdin
    """
    problem = check_name(name)
    if problem:
        fail(f"cannot store '{name}': {problem}", EXIT_USAGE)
    vault = _vault(app, config_path)
    try:
        opened = vault.unlock(create=True)
    except (VaultLocked, WrongPassphrase) as exc:
        fail(str(exc), EXIT_USAGE)
    except VaultError as exc:
        fail(str(exc), EXIT_RUNTIME)
    value = _read_value(name, from_stdin)
    if not value:
        fail(f"the value of {name} is empty; nothing stored", EXIT_USAGE)
    try:
        replaced = opened.set(name, value)
    except VaultError as exc:
        fail(str(exc), EXIT_RUNTIME)
    except OSError as exc:
        fail(f"cannot write the vault {vault.path}: {exc.strerror}", EXIT_RUNTIME)
    if as_json:
        print_json({"ok": True, "name": name, "vault": str(vault.path), "replaced": replaced})
        return
    click.echo(f"{'replaced' if replaced else 'stored'} {name} in the vault {vault.path}")
    click.echo(f"  use it in the YAML as: api_key: vault:{name}   (or secret: / password:)")


@secrets.command("list")
@config_option
@json_option
@click.pass_obj
def list_secrets(app: AppContext, config_path: str, as_json: bool) -> None:
    """List the vault's entries: each name, when it was set (UTC) and which fields of the
    config use it; never a value. No passphrase is needed.

    Fields of the config that name an entry the vault does not have are listed below
    the table (exit 0: `validate` is the check that fails). --json prints
    {"vault", "secrets": [{"name", "set_at", "used_by"}], "missing": [{"path", "vault_entry"}]}.

    \b
    Example:
        gridctl secrets list
        gridctl secrets list -c strategies.yaml --json
    """
    vault = _vault(app, config_path)
    try:
        entries = vault.entries()
    except VaultError as exc:
        fail(str(exc), EXIT_RUNTIME)
    refs = vault_references(Path(config_path)) if os.path.isfile(config_path) else []
    used = {e.name: [where for where, name in refs if name == e.name] for e in entries}
    missing = [(where, name) for where, name in refs if name not in used]
    if as_json:
        print_json({"vault": str(vault.path),
                    "secrets": [{"name": e.name, "set_at": _when(e.set_at_ms), "used_by": used[e.name]}
                                for e in entries],
                    "missing": [{"path": where, "vault_entry": name} for where, name in missing]})
        return
    if not entries:
        click.echo(f"no secrets in {vault.path}" if vault.exists() else
                   f"no vault at {vault.path} yet; add a secret with `gridctl secrets set NAME`")
    else:
        click.echo(f"vault {vault.path}: {len(entries)} secret(s)")
        click.echo(tabulate([[e.name, _when(e.set_at_ms), ", ".join(used[e.name]) or "-"] for e in entries],
                            headers=["name", "set at (UTC)", f"used by ({config_path})"]))
    for where, name in missing:
        click.echo(f"missing: {where} says vault:{name}, which is not in the vault; add it with "
                   f"`gridctl secrets set {name}`")


@secrets.command("rm")
@config_option
@click.argument("name")
@json_option
@click.pass_obj
def remove_secret(app: AppContext, config_path: str, name: str, as_json: bool) -> None:
    """Remove the secret NAME from the vault (no passphrase needed).

    A config that still says `vault:NAME` will then fail to load, naming the field.

    \b
    Example:
        gridctl secrets rm binance-key
    """
    vault = _vault(app, config_path)
    try:
        removed = vault.remove(name)
        names = vault.names() if not removed else []
    except VaultError as exc:
        fail(str(exc), EXIT_RUNTIME)
    except OSError as exc:
        fail(f"cannot write the vault {vault.path}: {exc.strerror}", EXIT_RUNTIME)
    if not removed:
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.8)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        if as_json:
            print_json({"ok": False, "name": name, "vault": str(vault.path), "removed": False})
        fail(f"no secret '{name}' in the vault {vault.path}{hint}", EXIT_USAGE)
    if as_json:
        print_json({"ok": True, "name": name, "vault": str(vault.path), "removed": True})
        return
    click.echo(f"removed {name} from the vault {vault.path}")

