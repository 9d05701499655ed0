"""PostgreSQL: opening a `database: postgresql://…` URL, reconnecting after the server went
away, and keeping the URL's password out of every message.

The URL is ``postgresql://USER[:PASSWORD]@[HOST][:PORT]/DATABASE[?key=value…]``; an empty
host with ``?host=/path`` is a Unix socket directory (``postgresql://gridctl@/gridctl?host=
/var/run/postgresql``). The query keys are libpq's (sslmode, connect_timeout, …). Better than
a password in the URL: libpq's own PGPASSWORD / ~/.pgpass / PGPASSFILE, which the driver
(psycopg2) reads when the URL has none.
"""

from __future__ import annotations

from peewee import (DatabaseError, DataError, IntegrityError, InterfaceError, NotSupportedError, PostgresqlDatabase,
                    ProgrammingError)

from gridctl.config.database_url import (  # noqa: F401 - the URL helpers, importable from here too
    CONNECT_TIMEOUT_S, SCHEMES, UrlError, connect_params, is_postgres, password_of, redact, scrub)

# errors of the statement, not of the connection: never retried
_NOT_THE_CONNECTION = (IntegrityError, DataError, ProgrammingError, NotSupportedError)

class GridctlPostgres(PostgresqlDatabase):
    """PostgresqlDatabase that opens a new connection when the server dropped the old one.

    A restarted server (or a network cut) leaves the connection object dead; peewee would
    keep using it and fail for ever. Only outside a transaction: a transaction cut short
    fails as a whole and the buffered writer retries it from its queue.
    """

    def _dead(self) -> bool:
        conn = self._state.conn
        return conn is not None and not self._state.closed and bool(getattr(conn, "closed", 0))

    def cursor(self, named_cursor=None):
        if self._dead() and not self.in_transaction():
            self._state.reset()  # dead: drop it without a round trip, connect() makes a new one
        return super().cursor(named_cursor)

    def _once_more_if_dead(self, call, *args):
        """`call`, and once more on a new connection when it failed because the old one was
        dead: psycopg2 only learns that on first use after the server went away (a thread
        whose connection sat idle through a server restart, e.g. the writer's last flush)."""
        try:
            return call(*args)
        except (DatabaseError, InterfaceError) as exc:
            if isinstance(exc, _NOT_THE_CONNECTION) or self.in_transaction() or not self._broken():
                raise
            self._state.reset()
            return call(*args)

    def _broken(self) -> bool:
        """Whether the open connection is unusable. psycopg2 may not know after "server closed
        the connection unexpectedly" (closed stays 0): ask the server."""
        conn = self._state.conn
        if conn is None or self._state.closed:
            return False
        if getattr(conn, "closed", 0):
            return True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
            return False
        except Exception:
            return True

    def begin(self, *args, **kwargs):
        # BEGIN is the first statement of a transaction: nothing is lost by sending it again
        return self._once_more_if_dead(lambda: super(GridctlPostgres, self).begin(*args, **kwargs))

    def execute_sql(self, sql, params=None):
        if self.in_transaction():  # a transaction cut short fails as a whole (the writer retries it)
            return super().execute_sql(sql, params)
        return self._once_more_if_dead(super().execute_sql, sql, params)


def open_postgres(url: str) -> GridctlPostgres:
    """An unconnected database object for a postgresql:// URL."""
    params = connect_params(url)
    return GridctlPostgres(params.pop("database"), **params)
