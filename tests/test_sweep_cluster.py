"""`gridctl sweep --cluster`: the same ranking on a Dask cluster the test starts on 127.0.0.1,
and clear errors when the extra is missing or the scheduler does not answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import gridctl.cli.commands  # noqa: F401  (registers the commands)
from gridctl.cli import cli
from gridctl.sweep import cluster

EXAMPLE = str(Path(__file__).resolve().parent.parent / "strategies.yaml.example")
ARGS = ["sweep", "-c", EXAMPLE, "sol-neutral", "--data", "builtin:SOLUSDT_1m",
        "--set", "grids=4:16:4", "--set", "risk.stop_loss_pct=1,6"]


@pytest.fixture(scope="module")
def local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=40) as lc:
        yield lc


def test_a_sweep_on_a_local_dask_cluster_ranks_as_the_local_sweep(local_cluster):
    local = CliRunner().invoke(cli, [*ARGS, "--jobs", "1", "--json"])
    remote = CliRunner().invoke(cli, [*ARGS, "--cluster", local_cluster.scheduler_address, "--json"])
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    rows = json.loads(remote.stdout)
    assert len(rows) == 8 and rows == json.loads(local.stdout)


def test_the_data_is_scattered_once_to_every_worker(local_cluster, monkeypatch):
    from distributed import Client

    seen = []
    real = Client.scatter

    def scatter(self, data, *a, **kw):
        seen.append((type(data).__name__, kw.get("broadcast")))
        return real(self, data, *a, **kw)

    monkeypatch.setattr(Client, "scatter", scatter)
    r = CliRunner().invoke(cli, [*ARGS, "--cluster", local_cluster.scheduler_address, "--json"])
    assert r.exit_code == 0 and seen == [("MarketData", True)]


def test_an_unreachable_scheduler_is_a_clear_error(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT_S", 1)
    r = CliRunner().invoke(cli, [*ARGS, "--cluster", "tcp://127.0.0.1:9"])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.startswith("error: --cluster: cannot reach the Dask scheduler at tcp://127.0.0.1:9: ")


def test_a_bad_address_is_a_clear_error():
    pytest.importorskip("distributed")
    r = CliRunner().invoke(cli, [*ARGS, "--cluster", "127.0.0.1:8786"])
    assert r.exit_code == 2
    assert r.stderr == "error: --cluster: expected a scheduler address like tcp://HOST:PORT, got '127.0.0.1:8786'\n"


def test_without_the_extra_it_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed raises ImportError
    r = CliRunner().invoke(cli, [*ARGS, "--cluster", "tcp://127.0.0.1:8786"])
    assert r.exit_code == 2
    assert r.stderr == ("error: --cluster needs Dask distributed, which is not installed: "
                        "pip install 'gridctl[cluster]'\n")
