"""The SQLite store's schema, and what upgrades an older one to it.

Each version is the statements that bring a file of the version before up
to it; :class:`~onecron.stores.sqlite.SqliteStore` runs those a file
lacks, in one transaction, when it opens it.
"""

from __future__ import annotations

from onecron.stores import stats

#: the schema version this code writes (``PRAGMA user_version``)
SCHEMA_VERSION = 5

# version 1: runs, switches, holds, schedulers
_SCHEMA_1 = (
    '''CREATE TABLE runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        scheduled TEXT,
        triggered_by TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        outcome TEXT,
        http_status INTEGER,
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        run_key TEXT UNIQUE)''',
    # last_runs, runs(job=...): per job, newest first
    'CREATE INDEX runs_by_job ON runs (application_id, job, id)',
    # runs() of a whole application id, newest first
    'CREATE INDEX runs_by_application ON runs (application_id, id)',
    # running(): small, as it only holds the unfinished runs
    '''CREATE INDEX runs_unfinished ON runs (application_id, job, id)
        WHERE outcome IS NULL''',
    '''CREATE TABLE job_settings (
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        enabled INTEGER NOT NULL DEFAULT 1,
        schedule TEXT,
        timezone TEXT,
        PRIMARY KEY (application_id, job))''',
    '''CREATE TABLE holds (
        application_id TEXT PRIMARY KEY,
        held INTEGER NOT NULL,
        since TEXT)''',
    '''CREATE TABLE schedulers (
        application_id TEXT NOT NULL,
        host TEXT NOT NULL,
        pid INTEGER NOT NULL,
        alive_since TEXT NOT NULL,
        heartbeat TEXT NOT NULL,
        PRIMARY KEY (application_id, host, pid))''',
)

# version 2: claims of occurrences and the schedulers' leases
_SCHEMA_2 = (
    '''CREATE TABLE claims (
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        scheduled TEXT NOT NULL,
        run_key TEXT NOT NULL,
        claimed TEXT NOT NULL,
        PRIMARY KEY (application_id, job, scheduled)) WITHOUT ROWID''',
    '''CREATE TABLE leases (
        application_id TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        node TEXT NOT NULL,
        acquired TEXT NOT NULL,
        renewed TEXT NOT NULL,
        expires TEXT NOT NULL)''',
)

_RUN_COLUMNS = ('id, application_id, job, scheduled, triggered_by, started, '
                'ended, outcome, http_status, output, error, run_key')

# version 3: a run writes 3 pages, not 8. Ids come from the highest one
# and the floor in run_ids (which prune raises before deleting the newest
# runs), not from AUTOINCREMENT, which wrote sqlite_sequence on every run;
# only keyed runs enter the run_key index; the per-application and the
# unfinished-runs indexes go (runs() of an id reads each job's newest
# through runs_by_job, and the status page tells a running job from its
# newest run).
_SCHEMA_3 = (
    '''CREATE TABLE runs_3 (
        id INTEGER PRIMARY KEY,
        application_id TEXT NOT NULL,
        job TEXT NOT NULL,
        scheduled TEXT,
        triggered_by TEXT NOT NULL,
        started TEXT NOT NULL,
        ended TEXT,
        outcome TEXT,
        http_status INTEGER,
        output TEXT NOT NULL DEFAULT '',
        error TEXT,
        run_key TEXT)''',
    f'INSERT INTO runs_3 ({_RUN_COLUMNS}) SELECT {_RUN_COLUMNS} FROM runs',
    'CREATE TABLE run_ids (floor INTEGER NOT NULL)',
    '''INSERT INTO run_ids SELECT IFNULL((
        SELECT seq FROM sqlite_sequence WHERE name = 'runs'), 0)''',
    'DROP TABLE runs',
    'ALTER TABLE runs_3 RENAME TO runs',
    # last_runs, runs(): per job, newest first
    'CREATE INDEX runs_by_job ON runs (application_id, job, id)',
    '''CREATE UNIQUE INDEX runs_by_key ON runs (run_key)
        WHERE run_key IS NOT NULL''',
)

# version 4: a run key is unique per application id and job, not across
# the store, so that a caller's key cannot reach another job's or another
# tenant's run; ``began`` tells a run that started (start_run: a second
# start with its key is refused) from one only recorded (record_run: the
# first start takes it over). Runs stored before count as started. A
# constant default: adding the column rewrites no row, and a starting run
# stores nothing for it.
_SCHEMA_4 = (
    'ALTER TABLE runs ADD COLUMN began INTEGER NOT NULL DEFAULT 1',
    'DROP INDEX runs_by_key',
    '''CREATE UNIQUE INDEX runs_by_key ON runs (application_id, job, run_key)
        WHERE run_key IS NOT NULL''',
)

#: what brings a store of version n (the index) to version n + 1
# version 5: the run stats the metrics read, and the triggers that keep them
_SCHEMA_5 = stats.schema('sqlite')

_MIGRATIONS = (_SCHEMA_1, _SCHEMA_2, _SCHEMA_3, _SCHEMA_4, _SCHEMA_5)
