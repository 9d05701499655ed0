"""`gridctl venue backpack`: the listening line, and the key pair checked before serving."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

import pytest
from click.testing import CliRunner

from backpack_helpers import key_pair
from gridctl.cli import cli


@pytest.mark.parametrize("args,message", [
    (["--api-key", "not-a-key", "--secret", "c2VjcmV0"],
     "error: --api-key: a Backpack API key is a base64 ED25519 public key (32 bytes)\n"),
    (["--api-key", key_pair()[0], "--secret", key_pair()[1]],
     "error: --secret does not belong to --api-key (its public key differs)\n"),
    (["--api-key", key_pair()[0], "--secret", "dG9vLXNob3J0"],
     "error: --secret: a Backpack secret is a base64 ED25519 seed (32 bytes)\n"),
])
def test_a_bad_key_pair_is_a_configuration_error(args, message):
    r = CliRunner().invoke(cli, ["venue", "backpack", "--port", "0", *args])
    assert (r.exit_code, r.output) == (2, message)


def start(tmp_path, *args):
    port_file = tmp_path / "url"
    proc = subprocess.Popen([sys.executable, "-m", "gridctl", "venue", "backpack", "--port", "0",
                             "--port-file", str(port_file), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    return proc, line, (port_file.read_text().strip() if port_file.exists() else "")


def stop(proc) -> None:
    proc.terminate()
    deadline = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)


def test_binance_named_data_drives_the_backpack_market_of_its_base(tmp_path):
    proc, line, url = start(tmp_path, "--data", "builtin:SOLUSDT_1m")
    try:
        assert line == f"gridctl venue backpack listening on {url}\n"
        with urllib.request.urlopen(url + "/api/v1/markPrices?symbol=SOL_USDC_PERP", timeout=5) as r:
            [row] = json.loads(r.read())
        assert row["markPrice"] == "171.7"  # the replay's first open, not the synthetic 170
    finally:
        stop(proc)
    assert proc.returncode == 0


def test_the_command_serves_the_default_markets(tmp_path):
    key, secret = key_pair()
    port_file = tmp_path / "url"
    proc = subprocess.Popen([sys.executable, "-m", "gridctl", "venue", "backpack", "--port", "0",
                             "--api-key", key, "--secret", secret, "--port-file", str(port_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = port_file.read_text().strip()
        assert line == f"gridctl venue backpack listening on {url}\n"
        with urllib.request.urlopen(url + "/api/v1/markets?marketType=PERP", timeout=5) as r:
            assert [m["symbol"] for m in json.loads(r.read())] == ["BTC_USDC_PERP", "SOL_USDC_PERP"]
        assert secret not in line
    finally:
        proc.terminate()
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
    assert proc.returncode == 0
    assert secret not in proc.stderr.read()
