"""`gridctl secrets set / list / rm` through CliRunner: exact messages and exit codes."""

from __future__ import annotations

import json

import nacl.pwhash
import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.secrets import vault as vault_mod
from gridctl.secrets.vault import Vault

CANARY = "CANARY-cli-e4d2a8"


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch):
    monkeypatch.setattr(vault_mod, "OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(vault_mod, "MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)
    for k in ("GRIDCTL_PASSPHRASE", "GRIDCTL_PASSPHRASE_FILE", "GRIDCTL_STATE_DIR", "GRIDCTL_CONFIG"):
        monkeypatch.delenv(k, raising=False)
    vault_mod.forget_keys()
    yield
    vault_mod.forget_keys()


@pytest.fixture
def st(tmp_path):
    return tmp_path / "st"


def gx(st, *args, input=None, passphrase="pw"):
    vault_mod.forget_keys()  # each command as a fresh process
    env = {"GRIDCTL_PASSPHRASE": passphrase} if passphrase else {}
    return CliRunner().invoke(cli, ["--state-dir", str(st), "secrets", *args], input=input, env=env)


def value_of(st, name, passphrase="pw"):
    vault_mod.forget_keys()
    return Vault.of_state_dir(st).unlock(passphrase).get(name).reveal()


def test_set_from_stdin_then_list_and_rm(st):
    r = gx(st, "set", "binance-key", input=CANARY + "\n")
    assert r.exit_code == 0
    assert r.output == (f"stored binance-key in the vault {st}/secrets.vault\n"
                        f"  use it in the YAML as: api_key: vault:binance-key   (or secret: / password:)\n")
    assert value_of(st, "binance-key") == CANARY  # one trailing newline dropped
    r = gx(st, "set", "binance-key", input="second\n")
    assert r.output.startswith(f"replaced binance-key in the vault {st}/secrets.vault\n")
    assert value_of(st, "binance-key") == "second"
    gx(st, "set", "okx-pass", "--stdin", input="p")
    r = gx(st, "list", passphrase=None)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert lines[0] == f"vault {st}/secrets.vault: 2 secret(s)"
    assert lines[1].split() == ["name", "set", "at", "(UTC)", "used", "by", "(strategies.yaml)"]
    assert [line.split()[0] for line in lines[3:]] == ["binance-key", "okx-pass"]
    assert CANARY not in r.output and "second" not in r.output
    data = json.loads(gx(st, "list", "--json", passphrase=None).output)
    assert data["vault"] == f"{st}/secrets.vault"
    assert [e["name"] for e in data["secrets"]] == ["binance-key", "okx-pass"]
    assert all(e["set_at"].endswith("Z") and set(e) == {"name", "set_at", "used_by"} for e in data["secrets"])
    r = gx(st, "rm", "okx-pass", passphrase=None)
    assert (r.exit_code, r.output) == (0, f"removed okx-pass from the vault {st}/secrets.vault\n")
    r = gx(st, "rm", "binance-ky", passphrase=None)
    assert r.exit_code == 2
    assert r.output == f"error: no secret 'binance-ky' in the vault {st}/secrets.vault (did you mean 'binance-key'?)\n"


def test_set_at_a_terminal_asks_twice_hidden_and_a_new_vault_asks_its_passphrase_twice(st, monkeypatch):
    monkeypatch.setattr("gridctl.cli.group.interactive", lambda: True)
    r = gx(st, "set", "k", input=f"newpass\nnewpass\n{CANARY}\n{CANARY}\n", passphrase=None)
    assert r.exit_code == 0, r.output
    assert r.stderr == (f"New passphrase for the vault {st}/secrets.vault: \n"
                        f"Repeat for confirmation: \n"
                        f"Value of k: \nRepeat for confirmation: \n")
    assert CANARY not in r.output
    assert value_of(st, "k", "newpass") == CANARY
    r = gx(st, "set", "k2", input=f"newpass\n{CANARY}\n{CANARY}\n", passphrase=None)
    assert r.exit_code == 0
    assert r.stderr.startswith(f"Passphrase for the vault {st}/secrets.vault: \nValue of k2: ")


def test_set_refuses_bad_names_empty_values_and_missing_or_wrong_passphrases(st):
    r = gx(st, "set", "bad name", input="x")
    assert (r.exit_code, r.output) == (2, "error: cannot store 'bad name': a vault entry name uses letters, digits, "
                                          "'-', '_' and '.' (up to 64, starting with a letter or digit)\n")
    r = gx(st, "set", "k", input="\n")
    assert (r.exit_code, r.output) == (2, "error: the value of k is empty; nothing stored\n")
    assert not (st / "secrets.vault").exists()
    r = gx(st, "set", "k", input="x", passphrase=None)
    assert (r.exit_code, r.output) == (2, f"error: the vault {st}/secrets.vault needs its passphrase: set "
                                          f"GRIDCTL_PASSPHRASE (or run in a terminal to be asked)\n")
    gx(st, "set", "k", input="x")
    r = gx(st, "set", "k2", input="y", passphrase="wrong")
    assert (r.exit_code, r.output) == (2, f"error: the passphrase from GRIDCTL_PASSPHRASE does not open the vault "
                                          f"{st}/secrets.vault\n")
    assert Vault.of_state_dir(st).names() == ["k"]


def test_list_and_rm_without_a_vault(st):
    r = gx(st, "list")
    assert (r.exit_code, r.output) == (0, f"no vault at {st}/secrets.vault yet; add a secret with "
                                          f"`gridctl secrets set NAME`\n")
    assert json.loads(gx(st, "list", "--json").output) == {"vault": f"{st}/secrets.vault", "secrets": [],
                                                                       "missing": []}
    r = gx(st, "rm", "k")
    assert (r.exit_code, r.output) == (2, f"error: no secret 'k' in the vault {st}/secrets.vault\n")
    assert not st.exists()  # rm created nothing


def test_list_says_which_fields_use_each_entry_and_which_name_a_missing_one(st, tmp_path):
    cfg = tmp_path / "strategies.yaml"
    cfg.write_text("accounts:\n  main:\n    exchange: binanceusdm\n    api_key: vault:bin-key\n"
                   "    secret: vault:bin-secret\n  okx:\n    password: vault:bin-key\n")
    gx(st, "set", "bin-key", input="k")
    gx(st, "set", "spare", input="s")
    r = gx(st, "list", "-c", str(cfg), passphrase=None)
    assert r.exit_code == 0
    lines = r.output.splitlines()
    assert [line.split()[0] for line in lines[3:5]] == ["bin-key", "spare"]
    assert lines[3].endswith("accounts.main.api_key, accounts.okx.password") and lines[4].endswith("-")
    assert lines[5] == ("missing: accounts.main.secret says vault:bin-secret, which is not in the vault; add it "
                        "with `gridctl secrets set bin-secret`")
    data = json.loads(gx(st, "list", "-c", str(cfg), "--json").output)
    assert [(e["name"], e["used_by"]) for e in data["secrets"]] == [
        ("bin-key", ["accounts.main.api_key", "accounts.okx.password"]), ("spare", [])]
    assert data["missing"] == [{"path": "accounts.main.secret", "vault_entry": "bin-secret"}]


def test_the_vault_of_the_configs_state_dir(tmp_path):
    cfg = tmp_path / "strategies.yaml"
    cfg.write_text(f"state_dir: {tmp_path}/from-config\naccounts: {{}}\n")
    r = CliRunner().invoke(cli, ["secrets", "set", "-c", str(cfg), "k"], input="v",
                           env={"GRIDCTL_PASSPHRASE": "pw"})
    assert r.exit_code == 0
    assert r.output.startswith(f"stored k in the vault {tmp_path}/from-config/secrets.vault\n")


def test_every_secrets_command_has_an_example():
    for args in (["secrets"], ["secrets", "set"], ["secrets", "list"], ["secrets", "rm"]):
        out = CliRunner().invoke(cli, [*args, "--help"]).output
        assert "Example:" in out and f"gridctl {' '.join(args)}" in out.split("Example:", 1)[1]
