"""Credentials in strategies.yaml: ${ENV}, vault:NAME and the Backpack key pair, through
`gridctl validate` / `plan` / `start` (exact messages, exit codes, never a value)."""

from __future__ import annotations

import base64
import json

import nacl.pwhash
import nacl.signing
import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.config import ConfigError, load
from gridctl.secrets import vault as vault_mod
from gridctl.secrets.vault import Vault

CANARY = "CANARY-cfg-5b2e11"
SK = nacl.signing.SigningKey(bytes(range(32)))
BP_KEY = base64.b64encode(SK.verify_key.encode()).decode()
BP_SECRET = base64.b64encode(bytes(SK)).decode()
OTHER_SECRET = base64.b64encode(bytes(range(1, 33))).decode()

# Line numbers below refer to this text.
LIVE = """\
version: 1
accounts:
  main:
    exchange: {exchange}
    api_key: {api_key}
    secret: {secret}
strategies:
  sol:
    account: main
    symbol: {symbol}
    mode: neutral
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch):
    monkeypatch.setattr(vault_mod, "OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(vault_mod, "MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)
    for k in ("GRIDCTL_PASSPHRASE", "GRIDCTL_PASSPHRASE_FILE", "GRIDCTL_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    vault_mod.forget_keys()
    yield
    vault_mod.forget_keys()


@pytest.fixture
def state(tmp_path, monkeypatch):
    st = tmp_path / "st"
    monkeypatch.setenv("GRIDCTL_STATE_DIR", str(st))
    return st


def write(tmp_path, exchange="binanceusdm", api_key="${GX_KEY}", secret="${GX_SECRET}", symbol="SOL/USDT:USDT",
          extra=""):
    p = tmp_path / "strategies.yaml"
    p.write_text(LIVE.format(exchange=exchange, api_key=api_key, secret=secret, symbol=symbol)
                 .replace("    secret:", extra + "    secret:", 1))
    return p


def store(st, **entries):
    opened = Vault.of_state_dir(st).unlock("pw", create=True)
    for name, value in entries.items():
        opened.set(name, value)
    vault_mod.forget_keys()  # as a fresh process: the key must come from the passphrase


def run(*args, env=None, input=None):
    return CliRunner().invoke(cli, list(args), env=env or {}, input=input)


def problems(result) -> list[str]:
    return [line.strip() for line in result.output.splitlines()[1:] if line.strip()]


def test_missing_environment_variables_name_the_field_and_the_variable(tmp_path, state):
    p = write(tmp_path, extra="    password: ${GX_PASS}\n")
    r = run("validate", "-c", str(p))
    assert r.exit_code == 2
    assert problems(r) == ["accounts.main.api_key (line 5): environment variable GX_KEY is not set",
                           "accounts.main.password (line 6): environment variable GX_PASS is not set",
                           "accounts.main.secret (line 7): environment variable GX_SECRET is not set"]


def test_an_empty_variable_is_refused_by_name(tmp_path, state):
    r = run("validate", "-c", str(write(tmp_path)), env={"GX_KEY": "", "GX_SECRET": CANARY})
    assert r.exit_code == 2
    assert problems(r) == ["accounts.main.api_key (line 5): is empty (environment variable GX_KEY is set but empty)"]


@pytest.mark.parametrize("written, kind", [(f"[{CANARY}, x]", "a list"), (f"{{k: {CANARY}}}", "a mapping"),
                                           ("123456789012345", "a number"), ("true", "true/false")])
def test_a_secret_of_the_wrong_type_is_refused_without_its_value(tmp_path, state, written, kind):
    r = run("validate", "-c", str(write(tmp_path, secret=written)), env={"GX_KEY": "k"})
    assert r.exit_code == 2
    assert problems(r) == [f"accounts.main.secret (line 6): must be text in quotes: the value, ${{ENV_VAR}} or "
                           f"vault:NAME (YAML read {kind} here; the value is not shown)"]
    assert CANARY not in r.output and "123456789012345" not in r.output


def test_a_wrong_field_next_to_a_secret_and_broken_yaml_on_its_line_show_no_value(tmp_path, state):
    r = run("validate", "-c", str(write(tmp_path, extra=f"    api_kee: {CANARY}\n")), env={"GX_KEY": "k",
                                                                                       "GX_SECRET": "s"})
    assert r.exit_code == 2
    assert problems(r) == ["accounts.main.api_kee (line 6): unknown key 'api_kee' (did you mean 'api_key'?)"]
    r = run("validate", "-c", str(write(tmp_path, secret=f"*{CANARY}")))
    assert r.exit_code == 2 and CANARY not in r.output
    assert problems(r) == ["(top level) (line 6): not valid YAML: found undefined alias '…' (on a credential's "
                           "line; its text is not shown)"]


def test_vault_reference_missing_entry_names_field_entry_and_vault(tmp_path, state):
    store(state, **{"bin-key": "k", "bin-secrt": CANARY})
    p = write(tmp_path, api_key="vault:bin-key", secret="vault:bin-secret")
    r = run("validate", "-c", str(p), env={"GRIDCTL_PASSPHRASE": "pw"})
    assert r.exit_code == 2
    assert problems(r) == [f"accounts.main.secret (line 6): vault:bin-secret is not in the vault "
                           f"{state}/secrets.vault (did you mean 'bin-secrt'?); add it with "
                           f"`gridctl secrets set bin-secret`"]


def test_wrong_passphrase_is_one_clear_problem_naming_the_vault(tmp_path, state):
    store(state, k="1", s="2")
    r = run("validate", "-c", str(write(tmp_path, api_key="vault:k", secret="vault:s")),
            env={"GRIDCTL_PASSPHRASE": "not it"})
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert problems(r) == [f"accounts.main.api_key (line 5): the passphrase from GRIDCTL_PASSPHRASE does not "
                           f"open the vault {state}/secrets.vault"]


def test_validate_without_a_passphrase_checks_the_rest_and_says_what_it_did_not(tmp_path, state):
    store(state, k="1", s="2")
    p = write(tmp_path, api_key="vault:k", secret="vault:s")
    r = run("validate", "-c", str(p))
    assert r.exit_code == 0, r.output
    assert r.output.splitlines()[-1] == (
        f"note: vault entries not checked: accounts.main.api_key (vault:k), accounts.main.secret (vault:s): the "
        f"vault {state}/secrets.vault was not opened (no passphrase: set GRIDCTL_PASSPHRASE, or run in a terminal "
        f"to be asked); the entries exist, their values (and a Backpack key pair among them) are checked when "
        f"the passphrase is given")
    data = json.loads(run("validate", "-c", str(p), "--json").output)
    assert data["ok"] is True
    assert data["secrets_not_checked"] == [{"path": "accounts.main.api_key", "vault_entry": "k"},
                                           {"path": "accounts.main.secret", "vault_entry": "s"}]
    r = run("validate", "-c", str(p), env={"GRIDCTL_PASSPHRASE": "pw"})
    assert r.exit_code == 0 and "note: vault" not in r.output
    # a structural problem and a missing entry are still found without the passphrase
    r = run("validate", "-c", str(write(tmp_path, api_key="vault:kk", secret="vault:bad name")))
    assert r.exit_code == 2
    assert problems(r) == [f"accounts.main.api_key (line 5): vault:kk is not in the vault {state}/secrets.vault"
                           f"; add it with `gridctl secrets set kk`",
                           "accounts.main.secret (line 6): vault:bad name: a vault entry name uses letters, digits, "
                           "'-', '_' and '.' (up to 64, starting with a letter or digit)"]


def test_a_vault_reference_without_any_vault_says_how_to_make_one(tmp_path, state):
    r = run("validate", "-c", str(write(tmp_path, api_key="vault:k", secret="vault:s")))
    assert r.exit_code == 2
    assert problems(r) == [f"accounts.main.api_key (line 5): vault:k: there is no vault at {state}/secrets.vault; "
                           f"add the secret with `gridctl secrets set k`",
                           f"accounts.main.secret (line 6): vault:s: there is no vault at {state}/secrets.vault; "
                           f"add the secret with `gridctl secrets set s`"]


def test_validate_asks_for_the_passphrase_at_a_terminal(tmp_path, state, monkeypatch):
    store(state, k="1", s="2")
    monkeypatch.setattr("gridctl.cli.group.interactive", lambda: True)
    r = run("validate", "-c", str(write(tmp_path, api_key="vault:k", secret="vault:s")), input="pw\n")
    assert r.exit_code == 0, r.output
    assert f"Passphrase for the vault {state}/secrets.vault: " in r.stderr and "note: vault" not in r.output


def test_plan_needs_no_passphrase_and_start_refuses_without_one(tmp_path, state):
    store(state, k="1", s="2")
    p = write(tmp_path, api_key="vault:k", secret="vault:s")
    assert run("plan", "-c", str(p), "sol", "--price", "170").exit_code == 0
    r = run("start", "-c", str(p))
    assert r.exit_code == 2
    assert problems(r) == [f"accounts.main.api_key (line 5): the vault {state}/secrets.vault needs its passphrase: "
                           f"set GRIDCTL_PASSPHRASE (or run in a terminal to be asked)"]
    assert not (state / "supervisor.pid").exists()


def test_vault_values_reach_the_config_as_secrets(tmp_path, state):
    store(state, k=CANARY, s="sec")
    config = load(write(tmp_path, api_key="vault:k", secret="${GX_SECRET}"),
                  environ={"GRIDCTL_PASSPHRASE": "pw", "GX_SECRET": "from-env", "GRIDCTL_STATE_DIR": str(state)})
    acc = config.accounts["main"]
    assert acc.api_key.reveal() == CANARY and acc.api_key.origin == "vault:k"
    assert acc.secret.reveal() == "from-env" and acc.secret.origin == "env:GX_SECRET"
    assert CANARY not in repr(config)


def test_backpack_key_pair_is_checked_offline(tmp_path, state):
    p = write(tmp_path, exchange="backpack", symbol="SOL/USDC:USDC")
    ok = run("validate", "-c", str(p), env={"GX_KEY": BP_KEY, "GX_SECRET": BP_SECRET})
    assert ok.exit_code == 0, ok.output
    r = run("validate", "-c", str(p), env={"GX_KEY": BP_KEY, "GX_SECRET": OTHER_SECRET})
    assert r.exit_code == 2
    assert problems(r) == ["accounts.main.secret (line 6): does not match api_key: the secret's public key is not "
                           "the API key (a key and a secret from different Backpack keys?); neither is shown"]
    assert BP_KEY not in r.output and OTHER_SECRET not in r.output


def test_backpack_key_pair_from_the_vault_and_on_a_paper_account_like_backpack(tmp_path, state):
    store(state, bp=OTHER_SECRET)
    paper = """\
version: 1
accounts:
  pp:
    exchange: paper
    like: backpack
    feed: {synthetic: {seed: 1, price: 170}}
    api_key: ${GX_KEY}
    secret: vault:bp
strategies:
  sol:
    account: pp
    symbol: SOL/USDC:USDC
    mode: neutral
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""
    p = tmp_path / "paper.yaml"
    p.write_text(paper)
    r = run("validate", "-c", str(p), env={"GX_KEY": BP_KEY, "GRIDCTL_PASSPHRASE": "pw"})
    assert r.exit_code == 2
    assert problems(r)[0].startswith("accounts.pp.secret (line 8): does not match api_key:")
    with pytest.raises(ConfigError):
        load(p, environ={"GX_KEY": BP_KEY, "GRIDCTL_PASSPHRASE": "pw"}, state_dir=state)
    store(state, bp=BP_SECRET)
    assert run("validate", "-c", str(p), env={"GX_KEY": BP_KEY, "GRIDCTL_PASSPHRASE": "pw"}).exit_code == 0


def test_read_commands_never_open_the_vault_nor_ask_for_its_passphrase(tmp_path, state, monkeypatch):
    store(state, k="1", s="2")
    monkeypatch.setattr("gridctl.cli.group.interactive", lambda: True)
    p = write(tmp_path, api_key="vault:k", secret="vault:s")
    for args in (["status"], ["logs", "sol"], ["export", "sol", "fills"], ["report"]):
        r = run(*args, "-c", str(p))
        assert (r.exit_code, r.output) == (1, f"error: no gridctl database in {state}; start a strategy first\n")
