"""Where runs, claims, leases, switches and heartbeats are kept.

:mod:`onecron.stores.base` holds the interface every backend implements
(and checks every argument once), :mod:`onecron.stores.records` the
records, :mod:`onecron.stores.roles` a protocol per role for the parts of
onecron that use one; :mod:`onecron.stores.sqlite` (the default) and
:mod:`onecron.stores.postgres` (several hosts) implement it on the SQL of
:mod:`onecron.stores.sql`, and :func:`open_store` turns a
``CronApp(store=...)`` setting into one of them.
"""

from __future__ import annotations

import os

from onecron.errors import OnecronError
from onecron.stores.base import Hold as Hold
from onecron.stores.base import JobSettings as JobSettings
from onecron.stores.base import Lease as Lease
from onecron.stores.base import Outcome as Outcome
from onecron.stores.base import Run as Run
from onecron.stores.base import RunKeyTaken as RunKeyTaken
from onecron.stores.base import SchedulerInfo as SchedulerInfo
from onecron.stores.base import Store as Store
from onecron.stores.base import StoreError as StoreError
from onecron.stores.base import Trigger as Trigger
from onecron.stores.base import _redacted

__all__ = ['Hold', 'JobSettings', 'Lease', 'Outcome', 'Run', 'RunKeyTaken',
           'SchedulerInfo', 'Store', 'StoreError', 'Trigger', 'open_store']


def open_store(target: str | os.PathLike[str] | Store | None) -> Store | None:
    """The store a ``CronApp(store=...)`` setting names.

    None: no store. A :class:`Store`: itself. A file path, or an URL
    ``sqlite:///relative/path`` or ``sqlite:////absolute/path`` (as in
    SQLAlchemy): a :class:`~onecron.stores.sqlite.SqliteStore`. A
    ``postgresql://`` or ``postgres://`` URL (``postgresql+driver://`` as
    in SQLAlchemy too): a :class:`~onecron.stores.postgres.PostgresStore`,
    which needs psycopg (``pip install onecron-wsgi[postgresql]``). Anything
    else is a ``ValueError``.

    Only what is wrong with the setting itself fails here: a PostgreSQL
    store connects on its first call, so a database that is down (or
    refuses the login) is a :class:`StoreError` of its calls, reported
    once, and not an application that fails to start.
    """
    if target is None or isinstance(target, Store):
        return target
    if isinstance(target, os.PathLike):
        target = os.fspath(target)
    if not isinstance(target, str) or not target.strip():
        raise ValueError(f'not a store, a path or a store URL: {target!r}')
    scheme, separator, rest = target.partition('://')
    if not separator:
        path = target
    elif scheme == 'sqlite' and rest.startswith('/') and len(rest) > 1:
        path = rest[1:]
    elif scheme in ('postgresql', 'postgres') or scheme.startswith(
            'postgresql+'):
        try:  # psycopg is an extra, imported only when asked for
            from onecron.stores.postgres import PostgresStore
        except ImportError as error:
            raise OnecronError('the PostgreSQL store needs psycopg: pip '
                               'install onecron-wsgi[postgresql]') from error
        return PostgresStore(f'postgresql://{rest}')
    else:
        raise ValueError(f'not a store path or URL: {_redacted(target)!r} '
                         '(use a file path, sqlite:///path, '
                         'postgresql://... or a Store)')
    if path == ':memory:':
        raise ValueError('an in-memory SQLite store cannot be shared by '
                         'threads and processes: give a file path')
    # the only place sqlite3 is imported
    from onecron.stores.sqlite import SqliteStore
    return SqliteStore(path)
