"""PostgreSQL: opening a `database: postgresql://…` URL, reconnecting after the server went
away, and keeping the URL's password out of every message.

The URL is ``postgresql://USER[:PASSWORD]@[HOST][:PORT]/DATABASE[?key=value…]``; an empty
host with ``?host=/path`` is a Unix socket directory (``postgresql://gridctl@/gridctl?host=
/var/run/postgresql``). The query keys are libpq's (sslmode, connect_timeout, …). Better than
a password in the URL: libpq's own PGPASSWORD / ~/.pgpass / PGPASSFILE, which the driver
(psycopg2) reads when the URL has none.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from peewee import (DatabaseError, DataError, IntegrityError, InterfaceError, NotSupportedError, PostgresqlDatabase,
                    ProgrammingError)

# errors of the statement, not of the connection: never retried
_NOT_THE_CONNECTION = (IntegrityError, DataError, ProgrammingError, NotSupportedError)

SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_S = 5  # a host that does not answer must not hold a worker's writer for minutes


def is_postgres(url: str) -> bool:
    """Whether `url` names a PostgreSQL database."""
    return urlsplit(url).scheme.lower() in SCHEMES


def redact(url: str) -> str:
    """The URL with its password replaced by ***, for messages."""
    return re.sub(r"^([a-zA-Z][\w+.-]*://[^:/@?#]*):[^@/?#]*@", r"\1:***@", url)


def password_of(url: str) -> str:
    """The URL's password ('' when it has none)."""
    try:
        return unquote(urlsplit(url).password or "")
    except ValueError:
        return ""


def scrub(text: str, url: str) -> str:
    """`text` with the URL's password (plain and percent-encoded) replaced by ***."""
    for secret in {password_of(url), urlsplit(url).password or ""}:
        if secret:
            text = text.replace(secret, "***")
    return text


class UrlError(ValueError):
    """A database URL gridctl cannot use; the message never holds the password."""


def connect_params(url: str) -> dict[str, Any]:
    """psycopg2 keyword arguments for a postgresql:// URL (UrlError when it is unusable)."""
    parts = urlsplit(url)
    database = unquote(parts.path.lstrip("/"))
    if not database:
        raise UrlError(f"database URL {redact(url)} names no database (postgresql://user@host/DATABASE)")
    params: dict[str, Any] = {"database": database, "application_name": "gridctl"}
    try:
        port = parts.port
    except ValueError:
        raise UrlError(f"database URL {redact(url)}: the port is not a number") from None
    if parts.username:
        params["user"] = unquote(parts.username)
    if parts.password:
        params["password"] = unquote(parts.password)
    if parts.hostname:
        params["host"] = unquote(parts.hostname)
    if port:
        params["port"] = port
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        params[key] = value  # libpq parses its own options (host=/socket/dir, sslmode, …)
    params.setdefault("connect_timeout", CONNECT_TIMEOUT_S)
    return params


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
