"""Processes that open a store at once: one of them creates or upgrades
it, none fails, and none claims an upgrade that did not happen.

The processes are real (forked) and wait at a barrier before each store,
so that they open it together, as the workers of a server that starts do;
many stores in a row make the race that used to be rare a sure thing. On
SQLite each store is a new file; on PostgreSQL each one is a new schema
(through ``search_path`` in the URL) of the test's own database.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import re
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from onecron.stores import postgres, sqlite
from onecron.stores.base import Store
from onecron.stores.postgres import PostgresStore
from onecron.stores.sqlite import SqliteStore

#: processes racing for each store
PROCESSES = 8
#: fresh stores in a row, per backend
SQLITE_STORES = 40
POSTGRES_STORES = 10
#: older stores (version 3) upgraded in a row, per backend
UPGRADES = 5

#: the bound on each test, start-up of the processes included
SECONDS = 15

_CONTEXT = multiprocessing.get_context('fork')

_UPGRADED = re.compile(r'schema upgraded from version (\d+) to (\d+)')

#: what one process saw of one store: (target, version or None, the log
#: records of onecron as (level, message), the error or None)
Seen = tuple[str, 'int | None', list[tuple[int, str]], 'str | None']


class _Records(logging.Handler):
    """Keeps the (level, message) of every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelno, record.getMessage()))


def _open(target: str) -> Store:
    if target.startswith('postgresql:'):
        return PostgresStore(target)
    return SqliteStore(target)


def _racer(targets: Sequence[str], barrier: Any, results: Any) -> None:
    """In a child: open each store of ``targets`` together with the other
    children, and report what happened."""
    handler = _Records()
    logger = logging.getLogger('onecron')
    logger.handlers = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    for target in targets:
        handler.records = []
        version = error = None
        try:
            barrier.wait(timeout=SECONDS)
            store = _open(target)
            try:
                version = store.version()
            finally:
                store.close()
        except BaseException as exc:  # reported, not lost in the child
            error = f'{type(exc).__name__}: {exc}'
        results.put((target, version, handler.records, error))


def race(targets: Sequence[str]) -> dict[str, list[Seen]]:
    """What each of PROCESSES processes saw of each store of ``targets``,
    opened by all of them together, one store after the other."""
    started = time.monotonic()
    barrier = _CONTEXT.Barrier(PROCESSES)
    results = _CONTEXT.Queue()
    children = [_CONTEXT.Process(target=_racer,
                                 args=(targets, barrier, results))
                for _ in range(PROCESSES)]
    seen: dict[str, list[Seen]] = {target: [] for target in targets}
    try:
        for child in children:
            child.start()
        for _ in range(PROCESSES * len(targets)):
            left = started + SECONDS - time.monotonic()
            try:
                outcome = results.get(timeout=max(left, 0.1))
            except queue.Empty:
                pytest.fail(f'the processes took more than {SECONDS} s')
            seen[outcome[0]].append(outcome)
        for child in children:
            child.join(timeout=5)
        assert [child.exitcode for child in children] == [0] * PROCESSES
    finally:
        for child in children:
            if child.is_alive():
                child.kill()
                child.join()
        results.close()
    return seen


def check(seen: dict[str, list[Seen]], *, version: int,
          created: bool) -> None:
    """Every process opened every store without an error or a warning and
    found it at the current version; no process says it upgraded a store
    that was not older; of each store, exactly one says it created it
    (``created``) or upgraded it from ``version``, and the others say
    nothing about its schema."""
    outcomes = [outcome for store in seen.values() for outcome in store]
    assert [error for *_, error in outcomes if error] == []
    assert {found for _, found, _, _ in outcomes} == {sqlite.SCHEMA_VERSION}
    records = {target: [record for _, _, records, _ in store
                        for record in records]
               for target, store in seen.items()}
    assert [record for store in records.values() for record in store
            if record[0] >= logging.WARNING] == []
    upgrades = {target: [tuple(map(int, match.groups()))
                         for _, message in store
                         if (match := _UPGRADED.search(message))]
                for target, store in records.items()}
    assert [(old, new) for store in upgrades.values()
            for old, new in store if not old < new] == [], 'bogus upgrades'
    for target, store in records.items():
        schema = [(level, message) for level, message in store
                  if 'schema' in message]
        if created:
            assert upgrades[target] == []
            assert [level for level, message in schema
                    if 'created' in message] == [logging.INFO], target
        else:
            assert upgrades[target] == [(version, sqlite.SCHEMA_VERSION)], (
                target)
        assert len(schema) == 1, (target, schema)


# --- SQLite ------------------------------------------------------------------

def test_processes_creating_a_sqlite_store_together(tmp_path: Path) -> None:
    """Processes opening a new SQLite file together: one creates it and
    says so, none fails or says it upgraded it."""
    seen = race([str(tmp_path / f'store{number}.sqlite')
                 for number in range(SQLITE_STORES)])
    check(seen, version=0, created=True)


def test_processes_upgrading_a_sqlite_store_together(tmp_path: Path) -> None:
    """Processes opening a version 3 SQLite file together: one upgrades it
    and says from which version, the others leave it be."""
    paths = [str(tmp_path / f'store{number}.sqlite')
             for number in range(UPGRADES)]
    for path in paths:
        with sqlite3.connect(path) as db:
            for statement in (*sqlite._SCHEMA_1, *sqlite._SCHEMA_2,
                              *sqlite._SCHEMA_3):
                db.execute(statement)
            db.execute('PRAGMA journal_mode = WAL')
            db.execute('PRAGMA user_version = 3')
        db.close()
        os.chmod(path, 0o600)
    check(race(paths), version=3, created=False)


# --- PostgreSQL --------------------------------------------------------------

def schemas(url: str, count: int, *, options: str = '',
            version: int = 0) -> list[str]:
    """URLs of ``count`` new schemas of the database at ``url``, each with
    onecron's tables of ``version`` (none for 0); ``options`` go on."""
    urls = []
    with psycopg.connect(url, autocommit=True) as db:
        for number in range(count):
            name = f'fresh{number}'
            db.execute(f'CREATE SCHEMA {name}')
            if version:
                with db.transaction():
                    db.execute(f'SET LOCAL search_path = {name}')
                    for statements in postgres._MIGRATIONS[:version]:
                        for statement in statements:
                            db.execute(statement)
                    db.execute('UPDATE onecron_schema SET version = %s',
                               (version,))
            urls.append(f'{url}?options=-csearch_path%3D{name}{options}')
    return urls


def test_processes_creating_a_postgres_store_together(
        postgresql_url: str) -> None:
    """Processes opening a database without onecron's tables together: one
    creates them and says so, none fails or says it upgraded them."""
    check(race(schemas(postgresql_url, POSTGRES_STORES)), version=0,
          created=True)


def test_processes_creating_a_postgres_store_whatever_the_isolation(
        postgresql_url: str) -> None:
    """The creation is decided under the lock also where sessions default
    to serializable transactions, which would otherwise see the database
    as it was before the lock."""
    urls = schemas(postgresql_url, POSTGRES_STORES // 2, options=(
        '%20-cdefault_transaction_isolation%3Dserializable'))
    check(race(urls), version=0, created=True)


def test_processes_upgrading_a_postgres_store_together(
        postgresql_url: str) -> None:
    """Processes opening version 3 tables together: one upgrades them and
    says from which version, the others leave them be."""
    check(race(schemas(postgresql_url, UPGRADES, version=3)), version=3,
          created=False)
