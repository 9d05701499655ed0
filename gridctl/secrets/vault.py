"""The encrypted vault: `<state dir>/secrets.vault`, one file of named secrets.

Each value is sealed with pynacl's SecretBox (XSalsa20-Poly1305) under a key derived
from a passphrase with argon2id. The file is JSON: the KDF's salt and limits, a
check box (so a wrong passphrase is told apart from a damaged entry, even in an empty
vault) and one box per entry; names and the time each was set are in the clear (so
`secrets list` and `secrets rm` need no passphrase), values never are. Each box
seals the entry's name with its value, so boxes cannot be swapped between names.

KDF limits: argon2id MODERATE (3 passes, 256 MiB; ~0.4 s on the project's 2-core
machine). The file may leave the machine in a backup, so an offline guess must be
costly; the key is derived once per process that needs it (the supervisor's forked
workers inherit it), so the cost is paid at `start`, not per worker. INTERACTIVE
(64 MiB) would make every guess ~5x cheaper for a saving nobody notices. The limits
are stored in the file, so a vault made with other limits still opens.

The passphrase comes from, in order: the caller, GRIDCTL_PASSPHRASE,
GRIDCTL_PASSPHRASE_FILE (a file holding it: systemd's LoadCredential=), the prompt
the CLI installs (only when stdin is a terminal). Writes are atomic (a temporary file
renamed over the vault) and serialised by a lock file; the vault is owner-only (0600).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from gridctl.secrets.secret import Secret

VAULT_FILE = "secrets.vault"
FORMAT = "gridctl-vault"
CHECK = b"gridctl-vault-check"
DEFAULT_STATE_DIR = Path("~/.local/state/gridctl")
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
NAME_RULE = "letters, digits, '-', '_' and '.' (up to 64, starting with a letter or digit)"
OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_MODERATE
MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_MODERATE
ENV_PASSPHRASE = "GRIDCTL_PASSPHRASE"
ENV_PASSPHRASE_FILE = "GRIDCTL_PASSPHRASE_FILE"

Prompt = Callable[[str, bool], Optional[str]]  # (question, confirm) -> passphrase, or None when no one can answer


class VaultError(Exception):
    """Anything wrong with the vault, as a sentence for the user (never a secret in it)."""


class WrongPassphrase(VaultError):
    """The passphrase does not open this vault."""


class VaultLocked(VaultError):
    """No passphrase was available (none in the environment, no terminal to ask)."""


@dataclass(frozen=True)
class Entry:
    """One secret's name and when it was set (epoch ms); never its value."""

    name: str
    set_at_ms: int


# ---- process-wide settings (inherited by the forked supervisor and workers) -------------------
_prompt: Optional[Prompt] = None
_state_dir_rule: Optional[Callable[[Optional[Path]], Path]] = None
_keys: dict[tuple, bytes] = {}  # (vault path, salt, opslimit, memlimit) -> derived key


def use_prompt(prompt: Optional[Prompt]) -> None:
    """Install how to ask for a passphrase (the CLI's hidden prompt); None: never ask."""
    global _prompt
    _prompt = prompt


def use_state_dir_rule(rule: Optional[Callable[[Optional[Path]], Path]]) -> None:
    """Install the CLI's state-dir rule (--state-dir > env > the config's state_dir > ...)."""
    global _state_dir_rule
    _state_dir_rule = rule


def forget_keys() -> None:
    """Drop every derived key this process holds."""
    _keys.clear()


def state_dir_for(config_state_dir: Optional[Path], environ: Optional[Mapping[str, str]] = None) -> Path:
    """The state dir whose vault a config's `vault:` fields read (the same rule as every command)."""
    if _state_dir_rule is not None:
        return _state_dir_rule(config_state_dir)
    env = os.environ if environ is None else environ
    if env.get("GRIDCTL_STATE_DIR"):
        return Path(env["GRIDCTL_STATE_DIR"]).expanduser()
    return config_state_dir if config_state_dir is not None else DEFAULT_STATE_DIR.expanduser()


def check_name(name: str) -> Optional[str]:
    """Why `name` cannot name a vault entry, or None when it can."""
    return None if NAME_RE.fullmatch(name or "") else f"a vault entry name uses {NAME_RULE}"


def passphrase_from(environ: Optional[Mapping[str, str]] = None) -> Optional[tuple[str, str]]:
    """(passphrase, where it came from) from GRIDCTL_PASSPHRASE or GRIDCTL_PASSPHRASE_FILE, else None."""
    env = os.environ if environ is None else environ
    if env.get(ENV_PASSPHRASE):
        return env[ENV_PASSPHRASE], ENV_PASSPHRASE
    if env.get(ENV_PASSPHRASE_FILE):
        path = Path(env[ENV_PASSPHRASE_FILE]).expanduser()
        try:
            text = path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise VaultError(f"cannot read the passphrase file {path} ({ENV_PASSPHRASE_FILE}): "
                             f"{exc.strerror}") from None
        if text:
            return text, f"{ENV_PASSPHRASE_FILE} ({path})"
    return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("not text")
    return base64.b64decode(text, validate=True)


def _derive(passphrase: str, salt: bytes, opslimit: int, memlimit: int) -> bytes:
    return nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase.encode("utf-8"), salt,
                                    opslimit=opslimit, memlimit=memlimit)


class Vault:
    """The vault file of one state dir."""

    def __init__(self, path: Path):
        self.path = Path(path)

    @classmethod
    def of_state_dir(cls, state_dir: Path) -> "Vault":
        return cls(Path(state_dir) / VAULT_FILE)

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    # ---- reading ------------------------------------------------------------------------------
    def _read(self) -> Optional[dict]:
        """The file's contents (None when there is no vault); a damaged or exposed file is a VaultError."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VaultError(f"cannot read the vault {self.path}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode & 0o777
            if mode & 0o077:
                raise VaultError(f"the vault {self.path} is open to other users (mode {mode:04o}); "
                                 f"make it owner-only: chmod 600 {self.path}")
            raw = f.read()
        try:
            data = json.loads(raw)
            kdf = data["kdf"]
            ok = (data.get("format") == FORMAT and data.get("version") == 1 and isinstance(data["entries"], dict)
                  and len(_unb64(kdf["salt"])) == nacl.pwhash.argon2id.SALTBYTES
                  and isinstance(kdf["opslimit"], int) and isinstance(kdf["memlimit"], int)
                  and nacl.pwhash.argon2id.OPSLIMIT_MIN <= kdf["opslimit"] <= nacl.pwhash.argon2id.OPSLIMIT_SENSITIVE
                  and nacl.pwhash.argon2id.MEMLIMIT_MIN <= kdf["memlimit"] <= nacl.pwhash.argon2id.MEMLIMIT_SENSITIVE
                  and all(isinstance(e, dict) and isinstance(e.get("box"), str) for e in data["entries"].values()))
            _unb64(data["check"])
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise VaultError(f"the vault {self.path} is damaged or not a gridctl vault; restore it from a "
                             f"backup, or move it away and set the secrets again")
        return data

    def entries(self) -> list[Entry]:
        """Every entry's name and time set, by name (no passphrase needed); [] when there is no vault."""
        data = self._read() or {"entries": {}}
        return [Entry(n, int(e.get("set_at_ms", 0))) for n, e in sorted(data["entries"].items())]

    def names(self) -> list[str]:
        return [e.name for e in self.entries()]

    # ---- opening ------------------------------------------------------------------------------
    def unlock(self, passphrase: Optional[str] = None, environ: Optional[Mapping[str, str]] = None,
               create: bool = False) -> "OpenVault":
        """The vault opened with its key: from this process's cache, else from the passphrase
        (given, from the environment, or asked for). `create`: a missing vault is made (on its
        first write), with a new salt, asking for the new passphrase twice.

        Raises VaultLocked (no passphrase anywhere), WrongPassphrase, VaultError.
        """
        data = self._read()
        if data is None:
            if not create:
                raise VaultError(f"there is no vault at {self.path}; add a secret with `gridctl secrets set NAME`")
            got = self._passphrase(passphrase, environ, confirm=True,
                                   question=f"New passphrase for the vault {self.path}")
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            key = _derive(got[0], salt, OPSLIMIT, MEMLIMIT)
            data = {"format": FORMAT, "version": 1,
                    "kdf": {"alg": "argon2id", "salt": _b64(salt), "opslimit": OPSLIMIT, "memlimit": MEMLIMIT},
                    "check": _b64(nacl.secret.SecretBox(key).encrypt(CHECK)), "entries": {}}
            self._remember(data, key)
            return OpenVault(self, key, data)
        cached = _keys.get(self._cache_key(data))
        if cached is not None and self._opens(data, cached):
            return OpenVault(self, cached, data)
        got = self._passphrase(passphrase, environ, confirm=False, question=f"Passphrase for the vault {self.path}")
        kdf = data["kdf"]
        key = _derive(got[0], _unb64(kdf["salt"]), kdf["opslimit"], kdf["memlimit"])
        if not self._opens(data, key):
            raise WrongPassphrase(f"the passphrase from {got[1]} does not open the vault {self.path}")
        self._remember(data, key)
        return OpenVault(self, key, data)

    def _passphrase(self, given: Optional[str], environ: Optional[Mapping[str, str]], confirm: bool,
                    question: str) -> tuple[str, str]:
        if given:
            return given, "the caller"
        got = passphrase_from(environ)
        if got is None and _prompt is not None:
            answer = _prompt(question, confirm)
            got = (answer, "the prompt") if answer else None
        if got is None:
            raise VaultLocked(f"the vault {self.path} needs its passphrase: set {ENV_PASSPHRASE} "
                              f"(or run in a terminal to be asked)")
        return got

    def _cache_key(self, data: dict) -> tuple:
        kdf = data["kdf"]
        return (str(self.path.resolve()), kdf["salt"], kdf["opslimit"], kdf["memlimit"])

    def _remember(self, data: dict, key: bytes) -> None:
        _keys[self._cache_key(data)] = key

    @staticmethod
    def _opens(data: dict, key: bytes) -> bool:
        try:
            return nacl.secret.SecretBox(key).decrypt(_unb64(data["check"])) == CHECK
        except nacl.exceptions.CryptoError:
            return False

    # ---- writing ------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (two `secrets set` at once must not lose one)."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, data: dict) -> None:
        """Replace the file atomically, owner-only, durably."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, json.dumps(data, indent=1, sort_keys=True).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def remove(self, name: str) -> bool:
        """Delete an entry (no passphrase needed: anyone who may write the file may delete it);
        False when there was none."""
        if not self.exists():
            return False
        with self._locked():
            data = self._read()
            if data is None or name not in data["entries"]:
                return False
            del data["entries"][name]
            self._write(data)
            return True


class OpenVault:
    """A vault with its key: read and set entries."""

    def __init__(self, vault: Vault, key: bytes, data: dict):
        self.vault, self._box, self._data = vault, nacl.secret.SecretBox(key), data

    @property
    def path(self) -> Path:
        return self.vault.path

    def names(self) -> list[str]:
        return sorted(self._data["entries"])

    def get(self, name: str) -> Optional[Secret]:
        """The entry's value as a Secret, or None when the vault has no such entry."""
        entry = self._data["entries"].get(name)
        if entry is None:
            return None
        try:
            sealed = json.loads(self._box.decrypt(_unb64(entry["box"])))
            ok = isinstance(sealed, dict) and sealed.get("name") == name and isinstance(sealed.get("value"), str)
        except (nacl.exceptions.CryptoError, ValueError):
            ok = False
        if not ok:
            raise VaultError(f"the entry {name} of the vault {self.path} is damaged; set it again with "
                             f"`gridctl secrets set {name}`")
        return Secret(sealed["value"], origin=f"vault:{name}")

    def set(self, name: str, value: str) -> bool:
        """Store (or replace) an entry; True when it replaced one. Re-reads the file under the lock,
        so entries set meanwhile by another process are kept."""
        problem = check_name(name)
        if problem:
            raise VaultError(f"cannot store '{name}': {problem}")
        box = _b64(self._box.encrypt(json.dumps({"name": name, "value": value}).encode()))
        with self.vault._locked():
            current = self.vault._read()
            if current is not None:
                if current["kdf"]["salt"] != self._data["kdf"]["salt"]:
                    raise VaultError(f"the vault {self.path} was replaced meanwhile; run the command again")
                self._data = current
            replaced = name in self._data["entries"]
            self._data["entries"][name] = {"box": box, "set_at_ms": int(time.time() * 1000)}
            self.vault._write(self._data)
        return replaced
