"""`endpoint:` and `sandbox:` on an account: accepted forms, exact refusals (path, line, exit 2).

The config code is the ccxt branch's (same text, so the branches merge cleanly); these tests
pin what the market commands rely on."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.config import load

LIVE = """\
version: 1
accounts:
  main:
    exchange: binanceusdm
    api_key: k
    secret: s
{extra}strategies:
  sol:
    account: main
    symbol: SOL/USDT:USDT
    mode: neutral
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""
PAPER = """\
version: 1
accounts:
  paper:
    exchange: paper
    feed: {{synthetic: {{price: 170}}}}
{extra}strategies:
  sol:
    account: paper
    symbol: SOL/USDT:USDT
    mode: neutral
    lower: 160
    upper: 180
    grids: 10
    investment: 500
"""


def problems(tmp_path, text: str) -> list[str]:
    path = tmp_path / "strategies.yaml"
    path.write_text(text)
    result = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert "Traceback" not in result.output
    assert result.exit_code == 2, result.output
    return [ln.strip() for ln in result.stderr.splitlines()[1:]]


@pytest.mark.parametrize("given, kept", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ("https://testnet.example.org/", "https://testnet.example.org"),
    ("http://[::1]:9000", "http://[::1]:9000"),
])
def test_an_endpoint_of_scheme_and_host_is_kept(tmp_path, given, kept):
    path = tmp_path / "s.yaml"
    path.write_text(LIVE.format(extra=f"    endpoint: {given}\n"))
    account = load(path).accounts["main"]
    assert (account.endpoint, account.sandbox) == (kept, False)


def test_sandbox_true_is_accepted(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(LIVE.format(extra="    sandbox: true\n"))
    account = load(path).accounts["main"]
    assert (account.endpoint, account.sandbox) == (None, True)


FORM = "must be http://HOST:PORT or https://HOST:PORT (no path)"


@pytest.mark.parametrize("given", ["ftp://127.0.0.1", "127.0.0.1:8080", "http://127.0.0.1:8080/fapi/v1",
                                   "http://127.0.0.1:port", "http://", "http://h/?x=1"])
def test_an_endpoint_that_is_not_scheme_and_host_is_refused(tmp_path, given):
    assert problems(tmp_path, LIVE.format(extra=f"    endpoint: {given}\n")) == [
        f"accounts.main.endpoint (line 7): {FORM}, got {given!r}"]


def test_endpoint_and_sandbox_on_a_paper_account_are_refused(tmp_path):
    extra = "    endpoint: http://127.0.0.1:1\n    sandbox: true\n"
    assert problems(tmp_path, PAPER.format(extra=extra)) == [
        "accounts.paper.endpoint (line 6): applies to exchange accounts only (a paper account is served by gridctl)",
        "accounts.paper.sandbox (line 7): applies to exchange accounts only (a paper account is served by gridctl)"]
