"""Finding and opening the database for the read commands (status, logs, export, report)."""

from __future__ import annotations

import click
from click.core import ParameterSource

from gridctl.cli.common import EXIT_USAGE, AppContext, fail, load_config_or_exit


def _locate(app: AppContext, config_path: str):
    """(state dir, database URL) for this invocation."""
    ctx = click.get_current_context()
    explicit = ctx.get_parameter_source("config_path") not in (ParameterSource.DEFAULT, None)
    config = None
    # --state-dir alone is enough; the config is read when given or when ./strategies.yaml is there.
    if explicit or (not app.state_dir_option and _exists(config_path)):
        config = load_config_or_exit(config_path, check_markets=False)
    return app.state_dir(config), (config.database if config is not None else None)


def _open_db(app: AppContext, config_path: str):
    """The database for this invocation, or a clear error and exit 1."""
    from peewee import PeeweeException

    from gridctl.store.db import NoDatabase, open_database

    state_dir, url = _locate(app, config_path)
    try:
        return open_database(state_dir, url=url, create=False)
    except NoDatabase as exc:
        fail(str(exc))
    except (PeeweeException, OSError) as exc:
        fail(f"cannot open the gridctl database in {state_dir if not url else 'the configured database'}: {exc}")


def _exists(path: str) -> bool:
    import os

    return os.path.isfile(path)


def _unknown(fn, *args, **kw):
    """Call a read function, turning an unknown strategy into a clear error (exit 2: a usage error)."""
    from gridctl.store.read import UnknownStrategy

    try:
        return fn(*args, **kw)
    except UnknownStrategy as exc:  # a misspelled name is a usage error
        fail(str(exc), EXIT_USAGE)
