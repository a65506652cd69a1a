"""What the status page shows: the state of each application id's jobs.

Collected through the :class:`~onecron.operations.Operations` with a
fixed number of store queries per application id (newest run per job,
job settings, hold state, scheduler heartbeats, the run stats behind the
lateness and last-success figures), whatever the number of jobs or
stored runs. The HTML page and ``status.json`` are two renderings of these
records; both pass their text through :func:`~onecron.text.encodable`, as
a job name, an application id or what a custom store returns may hold
lone surrogates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from onecron.operations import HasOperations, Operations, operations_of
from onecron.stores import stats  # metrics
from onecron.stores.base import Hold, JobSettings, Run, SchedulerInfo
from onecron.stores.history import missed_range
from onecron.text import encodable

__all__ = ['ApplicationStatus', 'JobStatus', 'collect', 'as_json']

#: the warning of an id whose scheduler has no base URL to call
NO_BASE_URL = ('no base URL: this process schedules no job of this id. '
               'Configure CronApp(base_url=...) (or allowed_hosts); the '
               'scheduler never takes its base from a Host header alone.')


@dataclass(frozen=True)
class JobStatus:
    """One job of one application id, as the page shows it."""

    name: str
    #: the effective schedule as written, None for a manual-only job
    schedule: str | None
    #: the effective schedule in words
    description: str | None
    timezone: str | None
    #: whether an operator's schedule replaces the code's
    overridden: bool
    #: whether the code gives the job no schedule
    manual: bool
    enabled: bool
    running: bool
    #: None when the job will not fire: manual-only, disabled, or held
    next_run: datetime | None
    last_run: Run | None
    # metrics: the same figures as /metrics
    #: the last run's start minus its nominal time, seconds
    #: (:func:`onecron.stores.stats.lateness`)
    lateness: float | None = None
    #: when an ok run last ended
    last_success: datetime | None = None

    @property
    def state(self) -> str:
        """``'RUNNING'`` or ``'IDLE'``."""
        return 'RUNNING' if self.running else 'IDLE'


@dataclass(frozen=True)
class ApplicationStatus:
    """One application id: its scheduler, hold state, pool and jobs."""

    id: str
    scheduler: SchedulerInfo | None
    #: None without a store
    hold: Hold | None
    queued: int
    calls_running: int
    jobs: list[JobStatus]
    #: whether a store keeps runs and switches
    stored: bool
    #: what keeps this process from scheduling the id, for the operator
    warnings: tuple[str, ...] = ()

    @property
    def held(self) -> bool:
        """Whether the id's jobs are held."""
        return self.hold is not None and self.hold.held


def collect(holder: Operations | HasOperations,
            application_id: str) -> ApplicationStatus:
    """The status of ``application_id``'s jobs, read now, from the
    :class:`~onecron.operations.Operations` of a
    :class:`~onecron.CronApp` (or the CronApp).

    Raises :class:`~onecron.stores.base.StoreError` when the store fails.
    """
    app = operations_of(holder)
    store = app.store
    last: dict[str, Run] = {}
    settings: dict[str, JobSettings] = {}
    hold = None
    if store is not None:
        # each read once for all the jobs: the page costs the same
        # number of queries whatever the number of jobs
        last = store.last_runs(application_id)
        settings = store.job_settings(application_id)
        hold = store.hold(application_id)
    job_stats = stats.read(store, application_id)  # metrics
    held = hold is not None and hold.held
    now = app.clock()
    jobs = []
    for name in sorted(app.jobs):
        job = app.jobs[name]
        setting = settings.get(name, JobSettings())
        schedule = job.schedule_with(settings.get(name))
        last_run = last.get(name)
        jobs.append(JobStatus(
            name=name,
            schedule=None if schedule is None else str(schedule),
            description=None if schedule is None else schedule.describe(),
            timezone=None if schedule is None else schedule.timezone,
            overridden=setting.schedule is not None,
            manual=job.manual,
            enabled=setting.enabled,
            # by the newest run: an older unfinished one was left by a
            # crash, or is a concurrent run of an overlap='allow' job
            running=last_run is not None and last_run.running,
            # a running scheduler keeps a disabled job's next fire queued
            # (and skips it when it comes): that is no next run
            next_run=(app.next_run_with(job, application_id, settings,
                                        held, now)
                      if setting.enabled else None),
            last_run=last_run,
            # metrics
            lateness=stats.lateness(last_run),
            last_success=_success(job_stats.get(name))))
    pool = app.pool_for(application_id)
    warnings: tuple[str, ...] = ()
    if app.enabled and app.base_url_of(application_id) is None:
        warnings = (NO_BASE_URL,)
    return ApplicationStatus(
        id=application_id, scheduler=app.scheduler_info(application_id),
        hold=hold, queued=pool.queued, calls_running=pool.running,
        jobs=jobs, stored=store is not None, warnings=warnings)


def _success(entry: stats.JobStats | None) -> datetime | None:  # metrics
    """The newest end of an ok run a job's stats keep, or None."""
    if entry is None or entry.last_success is None:
        return None
    return datetime.fromtimestamp(entry.last_success, timezone.utc)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def as_json(status: ApplicationStatus) -> dict[str, Any]:
    """``status`` as the JSON-ready dict of ``status.json``, every text
    :func:`encodable` (``json.dumps`` would write a lone surrogate as a
    ``\\udcff`` escape that strict JSON readers refuse)."""
    scheduler = status.scheduler
    data: dict[str, Any] = _encodable({
        'id': status.id,
        'scheduler': None if scheduler is None else {
            'host': scheduler.host,
            'pid': scheduler.pid,
            'alive_since': _iso(scheduler.alive_since),
            'heartbeat': _iso(scheduler.heartbeat),
        },
        'warnings': list(status.warnings),
        'held': status.held,
        'held_since': (_iso(status.hold.since)
                       if status.hold is not None and status.held else None),
        'queued': status.queued,
        'running': status.calls_running,
        'jobs': [{
            'name': job.name,
            'schedule': job.schedule,
            'description': job.description,
            'timezone': job.timezone,
            'overridden': job.overridden,
            'manual': job.manual,
            'enabled': job.enabled,
            'state': job.state,
            'next_run': _iso(job.next_run),
            'last_run': None if job.last_run is None else _run(job.last_run),
            # metrics
            'lateness': job.lateness,
            'last_success': _iso(job.last_success),
        } for job in status.jobs],
    })
    return data


def _run(run: Run) -> dict[str, Any]:
    """A job's last run; a ``missed`` record says what it stands for
    (``missed``: count, first, last) and has no start time or duration:
    nothing ran."""
    missed = missed_range(run)
    data: dict[str, Any] = {
        'id': run.id,
        'started': None if missed else _iso(run.started),
        'ended': None if missed else _iso(run.ended),
        'duration': None if missed else run.duration,
        'outcome': None if run.outcome is None else run.outcome.value,
        'trigger': run.trigger.value,
    }
    if missed is not None:
        data['missed'] = {'count': missed.count,
                          'first': _iso(missed.first),
                          'last': _iso(missed.last)}
    return data


def _encodable(value: Any) -> Any:
    """``value`` with :func:`encodable` applied to every str in it."""
    if isinstance(value, str):
        return encodable(value)
    if isinstance(value, dict):
        return {_encodable(key): _encodable(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    return value
