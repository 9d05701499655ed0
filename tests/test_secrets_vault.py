"""The vault file (gridctl/secrets/vault.py), the Secret type and the Backpack key-pair check."""

from __future__ import annotations

import base64
import copy
import json
import os
import pickle
import stat
import threading

import nacl.pwhash
import nacl.signing
import pytest

from gridctl.secrets import vault as vault_mod
from gridctl.secrets.keys import backpack_pair_problem
from gridctl.secrets.secret import Secret, SecretNotLoaded, UnloadedSecret
from gridctl.secrets.vault import Vault, VaultError, VaultLocked, WrongPassphrase

CANARY = "CANARY-vault-7f3a9c"


@pytest.fixture(autouse=True)
def fast_kdf(monkeypatch):
    """Quick argon2id limits for new vaults (one test checks the real ones); no key kept across tests."""
    monkeypatch.setattr(vault_mod, "OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MIN)
    monkeypatch.setattr(vault_mod, "MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MIN)
    vault_mod.forget_keys()
    yield
    vault_mod.forget_keys()


def new_vault(tmp_path, **entries: str) -> Vault:
    v = Vault.of_state_dir(tmp_path / "st")
    opened = v.unlock("correct horse", create=True)
    for name, value in entries.items():
        opened.set(name, value)
    vault_mod.forget_keys()
    return v


def test_values_round_trip_and_the_file_holds_no_value_owner_only(tmp_path):
    v = new_vault(tmp_path, binance_key=CANARY, other="x" * 40)
    assert v.path == tmp_path / "st" / "secrets.vault"
    assert stat.S_IMODE(v.path.stat().st_mode) == 0o600
    assert CANARY.encode() not in v.path.read_bytes()
    opened = v.unlock("correct horse")
    assert opened.get("binance_key").reveal() == CANARY
    assert opened.get("binance_key").origin == "vault:binance_key"
    assert opened.get("missing") is None
    assert v.names() == ["binance_key", "other"]
    assert [e.name for e in v.entries()] == ["binance_key", "other"] and all(e.set_at_ms > 0 for e in v.entries())


def test_a_new_vault_uses_argon2id_moderate(tmp_path, monkeypatch):
    monkeypatch.setattr(vault_mod, "OPSLIMIT", nacl.pwhash.argon2id.OPSLIMIT_MODERATE)
    monkeypatch.setattr(vault_mod, "MEMLIMIT", nacl.pwhash.argon2id.MEMLIMIT_MODERATE)
    v = new_vault(tmp_path, k="v")
    kdf = json.loads(v.path.read_text())["kdf"]
    assert (kdf["alg"], kdf["opslimit"], kdf["memlimit"]) == ("argon2id", 3, 256 * 1024 * 1024)
    assert len(base64.b64decode(kdf["salt"])) == nacl.pwhash.argon2id.SALTBYTES


def test_wrong_passphrase_names_the_vault_and_where_the_passphrase_came_from(tmp_path):
    v = new_vault(tmp_path, k="v")
    with pytest.raises(WrongPassphrase) as exc:
        v.unlock(environ={"GRIDCTL_PASSPHRASE": "wrong"})
    assert str(exc.value) == f"the passphrase from GRIDCTL_PASSPHRASE does not open the vault {v.path}"


def test_no_passphrase_anywhere_is_locked_not_a_prompt_on_a_closed_stdin(tmp_path):
    v = new_vault(tmp_path, k="v")
    with pytest.raises(VaultLocked) as exc:
        v.unlock(environ={})
    assert str(exc.value) == (f"the vault {v.path} needs its passphrase: set GRIDCTL_PASSPHRASE "
                              f"(or run in a terminal to be asked)")


def test_passphrase_file_and_prompt_are_used_in_that_order(tmp_path):
    v = new_vault(tmp_path, k="v")
    pf = tmp_path / "pass"
    pf.write_text("correct horse\n")
    assert v.unlock(environ={"GRIDCTL_PASSPHRASE_FILE": str(pf)}).get("k").reveal() == "v"
    vault_mod.forget_keys()
    asked = []
    vault_mod.use_prompt(lambda q, confirm: asked.append((q, confirm)) or "correct horse")
    try:
        assert v.unlock(environ={}).get("k").reveal() == "v"
    finally:
        vault_mod.use_prompt(None)
    assert asked == [(f"Passphrase for the vault {v.path}", False)]


def test_a_derived_key_is_kept_for_the_process_so_forked_workers_need_no_passphrase(tmp_path):
    v = new_vault(tmp_path, k="v")
    v.unlock("correct horse")
    assert v.unlock(environ={}).get("k").reveal() == "v"  # no passphrase now: the key is cached


def test_entries_cannot_be_swapped_between_names(tmp_path):
    v = new_vault(tmp_path, a="value-a", b="value-b")
    data = json.loads(v.path.read_text())
    data["entries"]["a"]["box"], data["entries"]["b"]["box"] = data["entries"]["b"]["box"], data["entries"]["a"]["box"]
    v.path.write_text(json.dumps(data))
    with pytest.raises(VaultError) as exc:
        v.unlock("correct horse").get("a")
    assert str(exc.value) == f"the entry a of the vault {v.path} is damaged; set it again with `gridctl secrets set a`"


def test_a_damaged_file_and_an_exposed_file_are_refused_clearly(tmp_path):
    v = new_vault(tmp_path, k="v")
    v.path.write_text("{not json")
    with pytest.raises(VaultError) as exc:
        v.entries()
    assert str(exc.value) == (f"the vault {v.path} is damaged or not a gridctl vault; restore it from a backup, "
                              f"or move it away and set the secrets again")
    v2 = new_vault(tmp_path / "b", k="v")
    os.chmod(v2.path, 0o644)
    with pytest.raises(VaultError) as exc:
        v2.unlock("correct horse")
    assert str(exc.value) == (f"the vault {v2.path} is open to other users (mode 0644); make it owner-only: "
                              f"chmod 600 {v2.path}")


def test_remove_and_concurrent_writers_keep_every_entry(tmp_path):
    v = new_vault(tmp_path, keep="1")
    opened = [v.unlock("correct horse") for _ in range(8)]
    threads = [threading.Thread(target=o.set, args=(f"n{i}", f"v{i}")) for i, o in enumerate(opened)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert v.names() == ["keep"] + [f"n{i}" for i in range(8)]
    assert v.remove("n3") is True and v.remove("n3") is False
    assert "n3" not in v.names()
    assert not list(v.path.parent.glob(".*.tmp"))  # every write renamed its temporary file


def test_secret_never_shows_its_value():
    s = Secret(CANARY, origin="env:K")
    for shown in (repr(s), str(s), f"{s}", f"{s:>40}", "%s" % s, "%r" % s, repr([s]), repr({"k": s})):
        assert CANARY not in shown
    assert s.reveal() == CANARY and s == Secret(CANARY) and s != Secret("other")
    with pytest.raises(TypeError):
        json.dumps({"k": s})
    with pytest.raises(TypeError):
        pickle.dumps(s)
    assert copy.deepcopy(s) is s
    with pytest.raises(AttributeError):
        s._value = "x"  # type: ignore[misc]


def test_an_unloaded_vault_secret_says_why_when_revealed():
    u = UnloadedSecret("bp-key", "accounts.bp.api_key")
    with pytest.raises(SecretNotLoaded) as exc:
        u.reveal()
    assert str(exc.value) == ("accounts.bp.api_key: vault:bp-key was not read: the vault was not opened "
                              "(set GRIDCTL_PASSPHRASE)")


def _pair():
    sk = nacl.signing.SigningKey.generate()
    return base64.b64encode(sk.verify_key.encode()).decode(), sk


def test_backpack_pair_accepts_a_seed_or_a_64_byte_key_pair():
    pub, sk = _pair()
    assert backpack_pair_problem(pub, base64.b64encode(bytes(sk)).decode()) is None
    assert backpack_pair_problem(pub, base64.b64encode(bytes(sk) + sk.verify_key.encode()).decode()) is None


def test_backpack_pair_mismatch_and_bad_formats_never_show_a_value():
    pub, sk = _pair()
    other_pub, other = _pair()
    seed = base64.b64encode(bytes(other)).decode()
    field, message = backpack_pair_problem(pub, seed)
    assert field == "secret" and message == ("does not match api_key: the secret's public key is not the API key "
                                             "(a key and a secret from different Backpack keys?); neither is shown")
    bad_pair = base64.b64encode(bytes(sk) + other.verify_key.encode()).decode()
    assert backpack_pair_problem(pub, bad_pair)[0] == "secret"
    assert backpack_pair_problem("not base64!", seed)[0] == "api_key"
    assert backpack_pair_problem(pub, base64.b64encode(b"short").decode())[0] == "secret"
    for args in ((pub, seed), (pub, bad_pair), ("not base64!", seed), (pub, "x" * 10)):
        message = backpack_pair_problem(*args)[1]
        assert all(a not in message for a in args)
