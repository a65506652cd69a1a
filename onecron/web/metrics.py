"""Prometheus metrics of the jobs: a :class:`Collector` and ``/metrics``.

Every value is read from the store (see :mod:`onecron.stores.stats`), so
each worker of a pre-forking server, and each host sharing the store,
answers the same numbers: no multiprocess directory, no push gateway. A
scrape costs five store reads per application id (run stats, newest
runs, job settings, hold, lease), whatever the number of stored runs.

``{prefix}/metrics`` answers whom the status page answers (the same
access rule), in Prometheus' text exposition format. It needs
``prometheus_client`` (``pip install onecron-wsgi[prometheus]``); without
it the path answers 501 saying so. The metrics:

``onecron_job_runs_total{application_id,job,outcome}``
    runs that ended, by outcome (``ok``, ``failed``, ``timed out``,
    ``skipped``)
``onecron_job_run_duration_seconds{application_id,job}``
    histogram of the durations of runs that ran
``onecron_job_lateness_seconds{application_id,job}``
    histogram of scheduled runs' start minus nominal time
``onecron_job_next_run_timestamp_seconds{application_id,job}``
    when the job is due next, after its newest run (in the past: overdue);
    absent for a job that will not fire (manual, disabled, held)
``onecron_job_last_success_timestamp_seconds{application_id,job}``
    when an ok run last ended; absent before the first
``onecron_job_missed_total{application_id,job,reason}``
    occurrences that no run stands for, as the misfire policy left them:
    ``held`` (the jobs were held) or ``down`` (no scheduler ran)
``onecron_scheduler_up{application_id}``
    1 while a scheduler holds the application id's lease, else 0
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from onecron.stores import stats
from onecron.stores.base import JobSettings, Run, StoreError
from onecron.stores.history import missed_range
from onecron.web import probes
from onecron.web.probes import Watched

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from prometheus_client.metrics_core import Metric

    from onecron.web.access import Access

__all__ = ['Collector', 'EXTRA_PATHS', 'exposition', 'serve']

log = logging.getLogger(__name__)

#: the text exposition format's media type
CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

_NOT_INSTALLED = (b'The metrics need prometheus_client: pip install '
                  b'onecron-wsgi[prometheus]\n')

_HEADERS = [('Cache-Control', 'no-store'),
            ('X-Content-Type-Options', 'nosniff')]


class Collector:
    """The metrics of ``app``'s jobs, for a ``prometheus_client`` registry.

    Register it on a registry of your own (``registry.register(
    Collector(app))``) to serve the jobs' metrics with your application's;
    ``{prefix}/metrics`` serves them alone. ``application_ids``: the ids
    to report; by default those the status page shows
    (:meth:`~onecron.CronApp.application_ids`).

    Collecting raises :class:`~onecron.stores.base.StoreError` when the
    store fails: the scrape fails, rather than answer numbers that drop
    to nothing and back. A plain class, not a subclass of
    ``prometheus_client``'s: importing onecron imports no
    ``prometheus_client`` (whose import sets up a default registry), and
    a registry takes any object with ``collect``.
    """

    def __init__(self, app: Watched,
                 application_ids: Iterable[str] | None = None) -> None:
        self.app = app
        self.application_ids = (None if application_ids is None
                                else list(application_ids))

    def describe(self) -> list[Metric]:
        """The metric families, without samples: registering reads no
        store."""
        return list(_families())

    def collect(self) -> Iterator[Metric]:
        """Read the store and yield the metric families."""
        families = _families()
        (runs, duration, lateness, next_run, last_success, missed,
         up) = families
        ids = self.application_ids
        for application_id in (self.app.application_ids() if ids is None
                               else ids):
            self._collect(application_id, families)
        yield from (runs, duration, lateness, next_run, last_success,
                    missed, up)

    def _collect(self, application_id: str, families: tuple[Any, ...],
                 ) -> None:
        (runs, duration, lateness, next_run, last_success, missed,
         up) = families
        app = self.app
        store = app.store
        now = app.clock()
        job_stats: dict[str, stats.JobStats] = {}
        last: dict[str, Run] = {}
        settings: dict[str, JobSettings] = {}
        held = False
        if store is not None:
            job_stats = stats.read(store, application_id)
            last = store.last_runs(application_id)
            settings = store.job_settings(application_id)
            held = store.hold(application_id).held
            lease = store.lease(application_id)
            running = lease is not None and lease.expires > now
        else:
            scheduler = app.schedulers.get(application_id)
            running = scheduler is not None and scheduler.active
        up.add_metric([application_id], 1 if running else 0)
        for name in sorted(set(app.jobs) | set(job_stats)):
            labels = [application_id, name]
            entry = job_stats.get(name, stats.JobStats())
            for outcome, count in sorted(entry.runs.items()):
                runs.add_metric([*labels, outcome], count)
            for family, histogram in ((duration, entry.duration),
                                      (lateness, entry.lateness)):
                family.add_metric(labels, histogram.cumulative(),
                                  histogram.sum)
            for reason, count in sorted(entry.missed.items()):
                missed.add_metric([*labels, reason], count)
            if entry.last_success is not None:
                last_success.add_metric(labels, entry.last_success)
            due = _next_run(app, name, application_id, settings, held,
                            last.get(name), now)
            if due is not None:
                next_run.add_metric(labels, due.timestamp())


def _next_run(app: Watched, name: str, application_id: str,
              settings: dict[str, JobSettings], held: bool, last: Run | None,
              now: datetime) -> datetime | None:
    """When the job ``name`` is due after its newest run ``last``: from
    the store alone, so that every process says the same, and in the past
    when nothing ran since it was due. None if it will not fire."""
    job = app.jobs.get(name)
    if job is None or held:
        return None
    setting = settings.get(name)
    if setting is not None and not setting.enabled:
        return None
    schedule = job.schedule_with(setting)
    if schedule is None:
        return None
    basis = now
    if last is not None:
        missed = missed_range(last)
        basis = (missed.last if missed is not None
                 else last.scheduled or last.started)
    return job.next_runtime(basis, application_id, schedule)


def _families() -> tuple[Any, ...]:
    """Empty metric families, in the order they are exposed."""
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
    )
    job = ['application_id', 'job']
    return (
        CounterMetricFamily('onecron_job_runs', 'Runs that ended, by '
                            'outcome', labels=[*job, 'outcome']),
        HistogramMetricFamily('onecron_job_run_duration_seconds',
                              'Durations of the runs that ran',
                              labels=job),
        HistogramMetricFamily('onecron_job_lateness_seconds', 'Start minus '
                              'nominal time of scheduled runs', labels=job),
        GaugeMetricFamily('onecron_job_next_run_timestamp_seconds',
                          'When the job is due next, after its newest run',
                          labels=job),
        GaugeMetricFamily('onecron_job_last_success_timestamp_seconds',
                          'When an ok run of the job last ended',
                          labels=job),
        CounterMetricFamily('onecron_job_missed', 'Occurrences missed, by '
                            'what the misfire policy left: held or down',
                            labels=[*job, 'reason']),
        GaugeMetricFamily('onecron_scheduler_up', 'Whether a scheduler '
                          "holds the application id's lease",
                          labels=['application_id']),
    )


def exposition(app: Watched) -> bytes:
    """The metrics of ``app`` in the text exposition format."""
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector(app))
    return generate_latest(registry)


def serve(app: Watched, access: Access, environ: WSGIEnvironment,
          start_response: StartResponse) -> Iterable[bytes]:
    """Answer ``{prefix}/metrics``: to whom ``access`` lets see the status
    page, GET or HEAD."""
    from webob import Request
    request = Request(environ)
    denied = access.denied(request)
    if denied is not None:
        headers = list(_HEADERS)
        if denied.status == 401:
            headers.append(('WWW-Authenticate',
                            'Basic realm="onecron", charset="UTF-8"'))
        if denied.retry_after is not None:
            headers.append(('Retry-After', str(denied.retry_after)))
        return _plain(start_response, denied.status,
                      denied.reason.encode() + b'\n', headers,
                      environ)
    if request.method not in ('GET', 'HEAD'):
        return _plain(start_response, 405, b'Use GET or HEAD here.\n',
                      [*_HEADERS, ('Allow', 'GET, HEAD')], environ)
    try:
        body = exposition(app)
    except ImportError:
        return _plain(start_response, 501, _NOT_INSTALLED, _HEADERS,
                      environ)
    except StoreError as exc:
        log.warning('metrics: the store failed: %s', exc)
        return _plain(start_response, 503, b'The run store failed.\n',
                      _HEADERS, environ)
    return _plain(start_response, 200, body, _HEADERS, environ,
                  CONTENT_TYPE)


_REASONS = {200: 'OK', 401: 'Unauthorized', 403: 'Forbidden',
            405: 'Method Not Allowed', 429: 'Too Many Requests',
            501: 'Not Implemented', 503: 'Service Unavailable'}


def _plain(start_response: StartResponse, status: int, body: bytes,
           headers: list[tuple[str, str]], environ: WSGIEnvironment,
           content_type: str = 'text/plain; charset=utf-8',
           ) -> list[bytes]:
    """A plain answer; no body to HEAD."""
    start_response(f'{status} {_REASONS[status]}', [
        ('Content-Type', content_type),
        ('Content-Length', str(len(body))), *headers])
    return [] if environ.get('REQUEST_METHOD') == 'HEAD' else [body]


def _metrics(app: Watched, environ: WSGIEnvironment,
             start_response: StartResponse) -> Iterable[bytes]:
    return serve(app, app.page_access, environ, start_response)


#: the answers under the prefix besides the status page and the jobs, by
#: the path after the prefix
EXTRA_PATHS: dict[str, Callable[[Watched, WSGIEnvironment, StartResponse],
                                Iterable[bytes]]] = {
    '/metrics': _metrics,
    '/livez': probes.livez,
    '/readyz': probes.readyz,
}
