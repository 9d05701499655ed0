"""Suite-wide fixtures."""

from __future__ import annotations

import decimal

import pytest


@pytest.fixture(autouse=True)
def _decimal_context_as_it_was():
    """Tests that drive ccxt directly in this process (venue and adapter tests) let ccxt's
    decimal_to_precision change the thread's decimal context (ROUND_HALF_UP, Underflow
    trapped); gridctl's own processes isolate every ccxt call (ccxt_streams.isolated), so a
    later test must not inherit it either."""
    saved = decimal.getcontext().copy()
    yield
    decimal.setcontext(saved)


@pytest.fixture(scope="session")
def pg_server():
    """A private PostgreSQL server for this test process (tests/pg_server.py): skipped without
    the binaries on a developer's machine, a failure under CI."""
    from tests.pg_server import start_server

    server = start_server()
    yield server
    server.destroy()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty database on the private server, as a `database:` URL (with its password)."""
    return pg_server.new_database()
