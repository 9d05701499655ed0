"""`database:` URLs: parsing a postgresql:// URL into the driver's arguments, checking it
in `validate`, and keeping its password out of every message (pure: no driver, no I/O).

The URL is ``postgresql://USER[:PASSWORD]@[HOST][:PORT]/DATABASE[?key=value…]``; an empty
host with ``?host=/path`` is a Unix socket directory. Query keys are libpq's (sslmode,
connect_timeout, …). A password is better kept out of the URL: libpq's PGPASSWORD,
~/.pgpass or PGPASSFILE are read when the URL has none.
"""

from __future__ import annotations

import re
from typing import Any, Optional
from urllib.parse import parse_qsl, unquote, urlsplit

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


def problem(url: str) -> Optional[str]:
    """Why `url` cannot be a gridctl `database:` (None when it can); never shows the password."""
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:
        return f"{redact(url)} is not a URL"
    if scheme not in SCHEMES:
        return (f"{redact(url)} is not a PostgreSQL URL: give postgresql://USER@HOST/DATABASE, or leave "
                f"database out for SQLite in the state dir")
    try:
        connect_params(url)
    except UrlError as exc:
        return str(exc)
    return None
