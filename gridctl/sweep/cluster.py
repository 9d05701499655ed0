"""A sweep on a Dask distributed cluster (the optional `cluster` extra: dask[distributed]).

The market data is scattered once to every worker (broadcast), and each candidate is
one task that runs `run_candidate` there against the worker's copy; the workers need
the same gridctl installed. Nothing here runs unless --cluster is given.
"""

from __future__ import annotations

from typing import Optional

from gridctl.backtest import MarketData
from gridctl.config.model import StrategyConfig
from gridctl.sweep.run import Market, Outcome, Progress, run_candidate

INSTALL = "pip install 'gridctl[cluster]'"
CONNECT_TIMEOUT_S = 10


class ClusterError(RuntimeError):
    """The cluster cannot be used: the extra is missing or the scheduler does not answer."""


def _client(address: str):
    try:
        from distributed import Client
    except ImportError:
        raise ClusterError(f"--cluster needs Dask distributed, which is not installed: {INSTALL}") from None
    if not address.startswith(("tcp://", "tls://", "inproc://", "ucx://")):
        raise ClusterError(f"--cluster: expected a scheduler address like tcp://HOST:PORT, got {address!r}")
    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"--cluster: cannot reach the Dask scheduler at {address}: {exc}") from None


def _remote(data: MarketData, market: Market, index: int, s: StrategyConfig) -> Outcome:
    return run_candidate(data, market, index, s)


def run_on_cluster(address: str, data: MarketData, market: Market, jobs: list[tuple[int, StrategyConfig]],
                   progress: Optional[Progress] = None) -> list[Outcome]:
    """Run every job (candidate index, strategy) on the cluster at `address`."""
    client = _client(address)  # first: it says what is missing
    from distributed import as_completed

    try:
        if not client.scheduler_info().get("workers"):
            raise ClusterError(f"--cluster: the Dask scheduler at {address} has no workers")
        shared = client.scatter(data, broadcast=True)  # once per worker, not once per task
        futures = [client.submit(_remote, shared, market, index, s, pure=False) for index, s in jobs]
        out = []
        with client.as_current():
            for future in as_completed(futures):
                out.append(future.result())
                if progress is not None:
                    progress(1)
        return out
    finally:
        client.close()
