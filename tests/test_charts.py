"""--html charts rendered for real in headless Chromium, with every network request refused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from store_fixture import realistic

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EXAMPLE = str(Path(__file__).resolve().parent.parent / "strategies.yaml.example")
needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium not installed (.ci/run installs it)")
pytest.importorskip("plotly")
BROWSER_HOSTS = ("clients2.google.com", "accounts.google.com", "update.googleapis.com")


def chromium(tmp_path: Path, page: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on a file:// page; a proxy that refuses everything, loopback included."""
    profile = tmp_path / "profile"
    profile.mkdir(exist_ok=True)
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={profile}", "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
           "--enable-logging=stderr", "--v=1", "--virtual-time-budget=10000", *args, page.as_uri()]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def check_rendered(tmp_path: Path, page: Path, price_trace: str) -> str:
    """The DOM after the scripts ran holds plotly's SVG plots; no request left the file."""
    text = page.read_text()
    assert "<script src=\"http" not in text and "cdn.plot.ly" not in text.split("<body>")[0]
    r = chromium(tmp_path, page, "--dump-dom")
    dom = r.stdout
    assert dom.count('class="main-svg"') >= 2, r.stderr[-2000:]
    for trace in (price_trace, "scatter", "bars"):  # plotly draws candles as "boxes"
        assert f'class="trace {trace}' in dom, trace
    assert "price, grid and fills" in dom and "position per level" in dom and "drawdown" in dom
    # every URL request Chromium logged, less the browser's own services (time, accounts, updates),
    # which it asks for whatever page is open; the proxy refuses them all anyway
    requested = [ln.split("URLRequest: ", 1)[1] for ln in r.stderr.splitlines() if "NotifyBeforeURLRequest: " in ln]
    from_page = [u for u in requested if not u.startswith("file:") and not any(
        f"//{host}/" in u for host in BROWSER_HOSTS)]
    assert from_page == []
    return dom


@needs_chromium
def test_backtest_html_renders_offline(tmp_path):
    out = tmp_path / "bt.html"
    r = CliRunner().invoke(cli, ["backtest", "-c", EXAMPLE, "sol-neutral", "--html", str(out)])
    assert r.exit_code == 0, r.output
    assert r.stderr.endswith(f"wrote the chart to {out}\n")
    dom = check_rendered(tmp_path, out, "boxes")
    assert "stop (stop_loss)" in dom and "buy fills" in dom and "sell fills" in dom
    shot = tmp_path / "bt.png"
    chromium(tmp_path, out, f"--screenshot={shot}", "--window-size=1400,1000")
    assert shot.stat().st_size > 20_000  # a picture, not a blank page


@needs_chromium
def test_report_html_renders_offline(tmp_path):
    from gridctl.store.db import open_database

    state = tmp_path / "state"
    db = open_database(state)
    realistic(db)
    db.close()
    out = tmp_path / "rep.html"
    # --period all: everything recorded up to now (the fixture's history ends at NOW, in the past)
    r = CliRunner().invoke(cli, ["--state-dir", str(state), "report", "sol-neutral", "--period", "all",
                                 "--html", str(out)])
    assert r.exit_code == 0, r.output
    check_rendered(tmp_path, out, "scatter")


def test_report_html_needs_exactly_one_name(tmp_path):
    r = CliRunner().invoke(cli, ["--state-dir", str(tmp_path), "report", "--html", str(tmp_path / "x.html")])
    assert r.exit_code == 2
    assert r.stderr == "error: --html draws one strategy: name it, e.g. gridctl report sol-neutral --html sol.html\n"
