"""Run statistics kept by the store itself, for metrics.

Counting runs at read time costs a scan of every stored run; so the
store keeps the sums as runs end, in one small table (``run_stats``,
``onecron_run_stats`` on PostgreSQL) written by triggers on the runs
table: no backend's write path changes, every process and host sharing
the store reads the same numbers, and a read costs one index range per
application id whatever the number of stored runs. Pruning runs lowers
no sum: the counters only grow, as Prometheus expects.

A row is one (application id, job, ``metric``, ``label``) with a
``count`` and a ``total``:

``runs``, the outcome
    runs that ended with that outcome, counted once, under the first
    outcome they got (a ``missed`` record is not a run: see ``missed``);
    ``total`` is the newest end of one, in seconds since the epoch (for
    ``ok``: the last success)
``duration``, a bucket's upper bound
    runs that ran (ok, failed, timed out) with a duration in that bucket
    (above the previous bound), and the sum of their durations
``lateness``, a bucket's upper bound
    the same for scheduled runs' lateness: start minus nominal time
``missed``, ``held`` or ``down``
    occurrences missed while the jobs were held, or while no scheduler
    ran (a record stands for a range, see
    :func:`~onecron.stores.history.missed_range`; extending it adds)

An ok run that was scheduled writes three rows (runs, duration,
lateness), each an upsert into the same few pages. The SQL is written
once here for both backends; the backends add :func:`schema` to their
migrations and read the rows with a method ``stats_rows(application_id)``
(see :func:`read`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from onecron.stores.base import Outcome, Run, Store

__all__ = ['DURATION_BUCKETS', 'LATENESS_BUCKETS', 'JobStats', 'read',
           'schema', 'lateness']

#: the upper bounds (seconds) of the run duration histogram, then +Inf
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                    300.0, 900.0, 3600.0)
#: the upper bounds (seconds) of the lateness histogram, then +Inf
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0, 3600.0)

#: outcomes of runs that ran, whose duration and lateness count
_RAN = "('ok', 'failed', 'timed out')"

# the two dialects: the table's name, and the expressions that differ
_DIALECTS = {
    'sqlite': {
        'table': 'run_stats',
        'runs': 'runs',
        # one b-tree, not a table and its key's index: fewer pages a run
        # writes
        'clustered': ' WITHOUT ROWID',
        'real': 'REAL',
        'int': 'INTEGER',
        # stored times are fixed-width UTC text: whole seconds through
        # strftime (exact), the microseconds as written
        'epoch': ("(CAST(strftime('%s', substr({a}, 1, 19)) AS INTEGER)"
                  ' + CAST(substr({a}, 20, 7) AS REAL))'),
        'occurrences': ("(CASE WHEN {a} LIKE 'missed %' THEN "
                        'MAX(CAST(substr({a}, 8) AS INTEGER), 1) '
                        'ELSE 1 END)'),
        'contains': "(instr({a}, '{b}') > 0)",
    },
    'postgresql': {
        'table': 'onecron_run_stats',
        'runs': 'onecron_runs',
        # every run updates rows in place: room on their page lets those
        # be heap-only updates, whose old versions go without a vacuum
        'clustered': ' WITH (fillfactor = 50)',
        'real': 'double precision',
        'int': 'bigint',
        'epoch': '(EXTRACT(EPOCH FROM {a})::double precision)',
        'occurrences': ("COALESCE(GREATEST(substring({a} FROM "
                        "'^missed ([0-9]{{1,18}}) occurrence')::bigint, 1),"
                        ' 1)'),
        'contains': "(position('{b}' IN {a}) > 0)",
    },
}

#: what the scheduler's missed records say when the jobs were held
#: (onecron.running.scheduler.WHILE_HELD; the stores may not import it)
_WHILE_HELD = 'while jobs were held'


def _buckets(value: str, bounds: tuple[float, ...]) -> str:
    """The SQL of the label of ``value``'s bucket."""
    cases = ' '.join(f"WHEN {value} <= {bound!r} THEN '{_label(bound)}'"
                     for bound in bounds)
    return f"(CASE {cases} ELSE '+Inf' END)"


def _label(bound: float) -> str:
    return f'{bound:g}'


def _upsert(d: dict[str, str], metric: str, label: str, count: str,
            total: str, where: str, *, value: str = 'NULL',
            backfill: bool = False, newest: bool = False) -> str:
    """An upsert of one stats row from a trigger (the run is ``NEW``), or
    with ``backfill`` from every stored run at once.

    ``{x}`` in ``label``, ``count`` and ``total`` stands for ``value``,
    computed once per run.
    """
    table = d['table']
    if backfill:
        x = 'NEW.x'
        source = f'FROM (SELECT NEW.*, {value} AS x FROM {d["runs"]} AS NEW)'
        source += ' AS NEW'
        count = f'SUM({count})'
        total = f'MAX({total})' if newest else f'SUM({total})'
        where += ' GROUP BY 1, 2, 3, 4'
    else:
        x = 'v.x'
        source = f'FROM (SELECT {value} AS x) AS v'
    summed = (f'CASE WHEN excluded.total > {table}.total THEN excluded.total'
              f' ELSE {table}.total END' if newest
              else f'{table}.total + excluded.total')
    label, count, total = (text.replace('{x}', x)
                           for text in (label, count, total))
    return f'''INSERT INTO {table} (application_id, job, metric, label,
        count, total)
        SELECT NEW.application_id, NEW.job, '{metric}', {label}, {count},
            {total} {source} WHERE {where}
        ON CONFLICT (application_id, job, metric, label) DO UPDATE SET
            count = {table}.count + excluded.count, total = {summed}'''


def _ended(d: dict[str, str], backfill: bool = False) -> list[str]:
    """The upserts of a run that got its outcome (``NEW``), or of every
    stored run (``backfill``)."""
    epoch = d['epoch']
    duration = (f"({epoch.format(a='NEW.ended')} - "
                f"{epoch.format(a='NEW.started')})")
    late = (f"({epoch.format(a='NEW.started')} - "
            f"{epoch.format(a='NEW.scheduled')})")
    missed = d['occurrences'].format(a='NEW.output')
    held = d['contains'].format(a='NEW.output', b=_WHILE_HELD)
    return [
        # and the newest end of a run of each outcome, the last success
        _upsert(d, 'runs', 'NEW.outcome', '1', '{x}',
                "NEW.outcome <> 'missed'",
                value=f"COALESCE({epoch.format(a='NEW.ended')}, 0)",
                backfill=backfill, newest=True),
        _upsert(d, 'duration', _buckets('{x}', DURATION_BUCKETS), '1', '{x}',
                f'NEW.ended IS NOT NULL AND NEW.outcome IN {_RAN}',
                value=duration, backfill=backfill),
        _upsert(d, 'lateness', _buckets('{x}', LATENESS_BUCKETS), '1', '{x}',
                f'NEW.scheduled IS NOT NULL AND NEW.outcome IN {_RAN}',
                value=late, backfill=backfill),
        _upsert(d, 'missed', f"CASE WHEN {held} THEN 'held' ELSE 'down' END",
                '{x}', '0', "NEW.outcome = 'missed'", value=missed,
                backfill=backfill),
    ]


def _more_missed(d: dict[str, str]) -> list[str]:
    """The upsert of a missed record extended (``OLD`` to ``NEW``)."""
    held = d['contains'].format(a='NEW.output', b=_WHILE_HELD)
    more = (f"({d['occurrences'].format(a='NEW.output')} - "
            f"{d['occurrences'].format(a='OLD.output')})")
    return [_upsert(d, 'missed', f"CASE WHEN {held} THEN 'held' ELSE 'down' "
                    'END', '{x}', '0', 'v.x > 0', value=more)]


def _table(d: dict[str, str]) -> str:
    return f'''CREATE TABLE {d['table']} (
        application_id text NOT NULL,
        job text NOT NULL,
        metric text NOT NULL,
        label text NOT NULL,
        count {d['int']} NOT NULL,
        total {d['real']} NOT NULL,
        PRIMARY KEY (application_id, job, metric, label)){d['clustered']}'''


def _backfill(d: dict[str, str]) -> list[str]:
    """The statements that count the runs stored before the table, as
    the triggers would have."""
    return _ended(d, backfill=True)


def schema(dialect: str) -> tuple[str, ...]:
    """The statements that add the stats table and its triggers, and count
    the runs stored already, in ``dialect`` (``'sqlite'`` or
    ``'postgresql'``)."""
    d = _DIALECTS[dialect]
    runs = d['runs']
    ended, more = _ended(d), _more_missed(d)
    if dialect == 'sqlite':
        def trigger(name: str, event: str, when: str,
                    body: list[str]) -> str:
            statements = ''.join(f'{statement};\n' for statement in body)
            return (f'CREATE TRIGGER {name} AFTER {event} ON {runs} '
                    f'FOR EACH ROW WHEN {when} BEGIN\n{statements}END')
        return (
            _table(d),
            *_backfill(d),
            trigger('run_stats_recorded', 'INSERT', 'NEW.outcome IS NOT NULL',
                    ended),
            trigger('run_stats_ended', 'UPDATE OF outcome',
                    'OLD.outcome IS NULL AND NEW.outcome IS NOT NULL', ended),
            trigger('run_stats_more_missed', 'UPDATE OF output',
                    "OLD.outcome = 'missed' AND NEW.outcome = 'missed'",
                    more),
        )

    def function(name: str, body: list[str]) -> str:
        statements = ''.join(f'{statement};\n' for statement in body)
        return (f'CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql '
                f'AS $body$\nBEGIN\n{statements}RETURN NULL;\nEND\n$body$')
    return (
        _table(d),
        *_backfill(d),
        function('onecron_run_stats_ended', ended),
        function('onecron_run_stats_more_missed', more),
        f'''CREATE TRIGGER onecron_run_stats_recorded AFTER INSERT ON {runs}
            FOR EACH ROW WHEN (NEW.outcome IS NOT NULL)
            EXECUTE FUNCTION onecron_run_stats_ended()''',
        f'''CREATE TRIGGER onecron_run_stats_ended
            AFTER UPDATE OF outcome ON {runs} FOR EACH ROW
            WHEN (OLD.outcome IS NULL AND NEW.outcome IS NOT NULL)
            EXECUTE FUNCTION onecron_run_stats_ended()''',
        f'''CREATE TRIGGER onecron_run_stats_more_missed
            AFTER UPDATE OF output ON {runs} FOR EACH ROW
            WHEN (OLD.outcome = 'missed' AND NEW.outcome = 'missed')
            EXECUTE FUNCTION onecron_run_stats_more_missed()''',
    )


#: the one query of :func:`read`, per dialect: one index range
def query(dialect: str) -> str:
    """The SELECT of an application id's stats rows (one parameter, the
    id, in the dialect's style)."""
    d = _DIALECTS[dialect]
    mark = '?' if dialect == 'sqlite' else '%s'
    return (f'SELECT job, metric, label, count, total FROM {d["table"]} '
            f'WHERE application_id = {mark}')


@dataclass
class Histogram:
    """Counts per bucket (not cumulative) by upper bound, and the sum."""

    bounds: tuple[float, ...]
    counts: dict[float, int] = field(default_factory=dict)
    sum: float = 0.0

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus has them, ``+Inf`` last."""
        running, pairs = 0, []
        for bound in (*self.bounds, math.inf):
            running += self.counts.get(bound, 0)
            # as prometheus_client writes its own: 1.0, 0.05, +Inf
            pairs.append(('+Inf' if bound == math.inf else repr(bound),
                          running))
        return pairs

    @property
    def count(self) -> int:
        """How many values in all."""
        return sum(self.counts.values())


@dataclass
class JobStats:
    """The sums of one job's runs, as the store keeps them."""

    #: runs by outcome value (``missed`` records are in ``missed``)
    runs: dict[str, int] = field(default_factory=dict)
    duration: Histogram = field(
        default_factory=lambda: Histogram(DURATION_BUCKETS))
    lateness: Histogram = field(
        default_factory=lambda: Histogram(LATENESS_BUCKETS))
    #: missed occurrences by reason, ``held`` or ``down``
    missed: dict[str, int] = field(default_factory=dict)
    #: the newest end of an ok run, seconds since the epoch
    last_success: float | None = None


def read(store: Store | None, application_id: str) -> dict[str, JobStats]:
    """The stats of ``application_id``'s jobs, by job name: one query.

    Empty for no store, or for a store of another kind that keeps none
    (it has no ``stats_rows`` method). Raises
    :class:`~onecron.stores.base.StoreError` when the store fails.
    """
    rows_of = getattr(store, 'stats_rows', None)
    if rows_of is None:
        return {}
    return collate(rows_of(application_id))


def collate(rows: Iterable[tuple[str, str, str, int, float]],
            ) -> dict[str, JobStats]:
    """The rows of :func:`query` as :class:`JobStats` by job."""
    stats: dict[str, JobStats] = {}
    for job, metric, label, count, total in rows:
        entry = stats.get(job)
        if entry is None:
            entry = stats[job] = JobStats()
        if metric == 'runs':
            entry.runs[label] = int(count)
            if label == Outcome.OK.value and total:
                entry.last_success = float(total)
        elif metric in ('duration', 'lateness'):
            histogram = getattr(entry, metric)
            bound = math.inf if label == '+Inf' else float(label)
            histogram.counts[bound] = int(count)
            histogram.sum += float(total)
        elif metric == 'missed':
            entry.missed[label] = int(count)
    return stats


def lateness(run: Run | None) -> float | None:
    """Seconds from ``run``'s nominal time to its start, as the lateness
    histogram counts them; None for no run, or one that has no nominal
    time or did not run (skipped, missed)."""
    if run is None or run.scheduled is None or run.outcome in (
            Outcome.SKIPPED, Outcome.MISSED):
        return None
    return (run.started - run.scheduled).total_seconds()
