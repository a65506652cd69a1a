"""The PostgreSQL store's schema, and what upgrades an older one to it.

Each version is the statements that bring a database of the version
before up to it; the first connection of a
:class:`~onecron.stores.postgres.PostgresStore` runs those it lacks, in
one transaction, under an advisory lock.
"""

from __future__ import annotations

from onecron.stores import stats

#: the schema version this code writes (in ``onecron_schema``)
SCHEMA_VERSION = 5
# the key of the advisory lock held while the schema is upgraded: 'onecron'
_MIGRATION_LOCK = 0x6F6E6563726F6E
# version 1: runs, switches, holds, schedulers
_SCHEMA_1 = (
    'CREATE TABLE onecron_schema (version integer NOT NULL)',
    'INSERT INTO onecron_schema (version) VALUES (0)',
    '''CREATE TABLE onecron_runs (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        application_id text NOT NULL,
        job text NOT NULL,
        scheduled timestamptz,
        triggered_by text NOT NULL,
        started timestamptz NOT NULL,
        ended timestamptz,
        outcome text,
        http_status integer,
        output text NOT NULL DEFAULT '',
        error text,
        run_key text UNIQUE)''',
    # last_runs, runs(job=...): per job, newest first
    '''CREATE INDEX onecron_runs_by_job
        ON onecron_runs (application_id, job, id)''',
    # runs() of a whole application id, newest first
    '''CREATE INDEX onecron_runs_by_application
        ON onecron_runs (application_id, id)''',
    # running(): small, as it only holds the unfinished runs
    '''CREATE INDEX onecron_runs_unfinished
        ON onecron_runs (application_id, job, id) WHERE outcome IS NULL''',
    '''CREATE TABLE onecron_job_settings (
        application_id text NOT NULL,
        job text NOT NULL,
        enabled boolean NOT NULL DEFAULT true,
        schedule text,
        timezone text,
        PRIMARY KEY (application_id, job))''',
    '''CREATE TABLE onecron_holds (
        application_id text PRIMARY KEY,
        held boolean NOT NULL,
        since timestamptz)''',
    '''CREATE TABLE onecron_schedulers (
        application_id text NOT NULL,
        host text NOT NULL,
        pid bigint NOT NULL,
        alive_since timestamptz NOT NULL,
        heartbeat timestamptz NOT NULL,
        PRIMARY KEY (application_id, host, pid))''',
)

# version 2: claims of occurrences and the schedulers' leases
_SCHEMA_2 = (
    '''CREATE TABLE onecron_claims (
        application_id text NOT NULL,
        job text NOT NULL,
        scheduled timestamptz NOT NULL,
        run_key text NOT NULL,
        claimed timestamptz NOT NULL,
        PRIMARY KEY (application_id, job, scheduled))''',
    # prune: old claims of every id and job
    'CREATE INDEX onecron_claims_by_time ON onecron_claims (scheduled)',
    # acquired, renewed, expires: the holder's clock; deadline: the
    # server's, which alone decides whether the lease has expired
    '''CREATE TABLE onecron_leases (
        application_id text PRIMARY KEY,
        holder text NOT NULL,
        node text NOT NULL,
        acquired timestamptz NOT NULL,
        renewed timestamptz NOT NULL,
        expires timestamptz NOT NULL,
        deadline timestamptz NOT NULL)''',
)

# version 3: running() is gone (the status page tells a running job from
# its newest run), and so is the index that served it, which every run
# wrote twice
_SCHEMA_3 = (
    'DROP INDEX onecron_runs_unfinished',
)

# version 4: a run key is unique per application id and job, not across
# the store, so that a caller's key cannot reach another job's or another
# tenant's run; ``began`` tells a run that started (start_run: a second
# start with its key is refused) from one only recorded (record_run: the
# first start takes it over). Runs stored before count as started; a
# constant default adds the column without rewriting the table.
_SCHEMA_4 = (
    '''ALTER TABLE onecron_runs
        ADD COLUMN began boolean NOT NULL DEFAULT true''',
    # the constraint "run_key text UNIQUE" of version 1 made
    'ALTER TABLE onecron_runs DROP CONSTRAINT onecron_runs_run_key_key',
    '''CREATE UNIQUE INDEX onecron_runs_by_key
        ON onecron_runs (application_id, job, run_key)
        WHERE run_key IS NOT NULL''',
)

#: what brings a store of version n (the index) to version n + 1
# version 5: the run stats the metrics read, and the triggers that keep them
_SCHEMA_5 = stats.schema('postgresql')

_MIGRATIONS = (_SCHEMA_1, _SCHEMA_2, _SCHEMA_3, _SCHEMA_4, _SCHEMA_5)
