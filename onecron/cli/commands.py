"""The commands: each takes the application, the parsed command line and
where to print, and gives the exit status (:data:`Command`); what stops
it raises :class:`~onecron.cli.errors.CommandError`.

:mod:`~onecron.cli.parser` maps the command line onto them and
:mod:`~onecron.cli.program` runs them.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Callable
from typing import TextIO
from urllib.parse import urlsplit

from webob import Request

from onecron.app import CronApp
from onecron.cli import export
from onecron.cli.errors import CommandError, UsageError
from onecron.cli.export.private_files import _write_private
from onecron.cli.loading import _default_id, _job_name, _store
from onecron.cli.printing import _duration, _last, _table, _when
from onecron.protocol.headers import RUN_HEADER, TRIGGER_HEADER
from onecron.running.lock import JobLocks
from onecron.stores.base import Trigger
from onecron.stores.history import missed_range
from onecron.web.status.model import as_json, collect

log = logging.getLogger(__name__)

#: a command: the application, the parsed command line and where to
#: print in; the exit status
Command = Callable[[CronApp, argparse.Namespace, TextIO], int]


def _list(app: CronApp, args: argparse.Namespace, out: TextIO) -> int:
    application_id = args.application_id or _default_id(app)
    status = collect(app, application_id)
    rows = [['JOB', 'SCHEDULE', 'ZONE', 'NEXT RUN', 'DESCRIPTION']]
    for job in status.jobs:
        if job.manual and job.schedule is None:
            rows.append([job.name, 'manual', '-', '-',
                         'manual only: onecron run, its URL or the status '
                         'page'])
            continue
        if job.next_run is not None:
            nexts = [_when(job.next_run)]
        else:
            nexts = ['held' if status.held else
                     'disabled' if not job.enabled else '-']
        schedule = app.schedule_of(job.name, application_id)
        moment = job.next_run
        for _ in range(args.next - 1):
            if moment is None or schedule is None:
                break
            moment = app.jobs[job.name].next_runtime(moment, application_id,
                                                     schedule)
            nexts.append(_when(moment))
        words = (job.description or '') + (' (overridden)'
                                           if job.overridden else '')
        rows.append([job.name, job.schedule or '', job.timezone or '',
                     nexts[0], words])
        rows += [['', '', '', moment_text, ''] for moment_text in nexts[1:]]
    if len(rows) == 1:
        out.write(f'{args.app} has no jobs\n')
        return 0
    _table(rows, out)
    return 0


def _run(app: CronApp, args: argparse.Namespace, out: TextIO) -> int:
    name = _job_name(app, args.app, args.job)
    # a request must not start a scheduler in this short-lived process
    app.stop()
    configured = app.base_url if isinstance(app.base_url, str) else None
    base = args.base_url or configured or 'http://localhost'
    # the Host header as a client sends it: no default port added, so
    # an application id taken from the host is the one of real requests
    headers = {TRIGGER_HEADER: Trigger.MANUAL.value,
               RUN_HEADER: uuid.uuid4().hex, 'Host': urlsplit(base).netloc}
    application_id = app.application_id_of(Request.blank(
        base.rstrip('/') + app.prefix + '/', headers=headers))
    if application_id is None:
        raise CommandError(f'{base} is no application id\'s: pass the '
                           f'--base-url of one')
    if not args.base_url:
        base = app.base_url_of(application_id) or base
    # chained jobs are called on this base, not on a request's host
    app.operations.tenants.use_base_url(application_id, base)
    if app.jobs[name].overlap != 'allow':
        _check_job_lock(app, application_id, name)
    # the static URL, or with static URLs off one made for this run
    url = app.operations.trigger_url(name, base, application_id,
                                     Trigger.MANUAL, headers[RUN_HEADER],
                                     app.clock())
    response = Request.blank(url, method='POST',
                             headers=headers).get_response(app)
    if response.status_code == 409:
        raise CommandError(f'job {name!r} is already running '
                           f'({application_id}): not run again')
    if not 200 <= response.status_code < 300:
        raise CommandError(f'job {name!r} failed: HTTP {response.status}')
    out.write(response.text)
    job = app.jobs[name]
    if job.then:
        # the chained jobs are called over HTTP: wait for those calls
        log.info('waiting for the chained jobs %s', ', '.join(job.then))
        pool = app.pool_for(application_id)
        deadline = time.monotonic() + app.trigger_timeout
        while (pool.running or pool.queued) and time.monotonic() < deadline:
            time.sleep(0.05)
    return 0


def _check_job_lock(app: CronApp, application_id: str, name: str) -> None:
    """Say in one line what is wrong with the job's lock, if anything,
    before the run (the endpoint would only answer 503)."""
    locks = JobLocks(app.lock_dir)
    try:
        if locks.acquire(application_id, name):
            locks.release(application_id, name)
    except OSError as exc:
        raise CommandError(f'job {name!r} ({application_id}) cannot run: '
                           f'{exc}') from exc
    finally:
        locks.close()


def _url(app: CronApp, args: argparse.Namespace, out: TextIO) -> int:
    name = _job_name(app, args.app, args.job)
    if not (args.base_url or app.base_url):
        raise UsageError('no base URL: pass --base-url (or configure '
                         'CronApp(base_url=...))')
    out.write(app.url_for(name, args.base_url,
                          application_id=args.application_id,
                          occurrence=args.occurrence) + '\n')
    return 0


def _export(app: CronApp, args: argparse.Namespace, out: TextIO) -> int:
    application_id = args.application_id or _default_id(app)
    base_url = args.base_url or app.base_url_of(application_id)
    if not base_url:
        raise UsageError('no base URL: pass --base-url, the URL the jobs '
                         'are reachable at from where they are called')
    config_dir = None
    if args.configs:  # systemd and cron: curl reads each URL from a file
        where = args.config_dir or args.output
        if where is None:
            raise UsageError(
                f'export {args.format} keeps each job URL in a private curl '
                f'config file, off the command line: pass --output DIR to '
                f'write everything there, or --config-dir DIR to write those '
                f'files there and the {args.configs} to stdout')
        config_dir = os.path.abspath(where)
    occurrence = None if args.occurrence == 'none' else args.occurrence
    if occurrence is not None and app.store is None:
        log.warning('%s keeps no store: a URL with occurrence=nearest needs '
                    'one to refuse a second call of an occurrence',
                    args.app)
    calls = []
    for name in sorted(app.jobs):
        job = app.jobs[name]
        timeout = args.max_time or job.timeout or app.trigger_timeout
        url = None if job.manual else app.url_for(
            name, base_url, application_id=application_id,
            occurrence=occurrence)
        calls.append(export.JobCall(name, job.schedule, url,
                                    max(1, math.ceil(timeout))))
    try:
        result = args.render(args, calls, config_dir)
    except ValueError as exc:  # names the job, never its URL
        raise CommandError(str(exc)) from exc
    for skipped in result.skipped:
        if skipped.manual:
            continue  # nothing to export: the comments say so
        if args.strict:
            raise CommandError(f'cannot export job {skipped.job!r}: '
                               f'{skipped.reason}')
        log.warning('left out job %r: %s', skipped.job, skipped.reason)
    written = []
    if result.configs:  # first, so no line names a file not yet there
        assert config_dir is not None
        written += _write_private(config_dir, result.configs)
        log.info('wrote the job URLs into %d curl config files in %s',
                 len(result.configs), config_dir)
    if args.output is None:
        out.write(result.text())
        return 0
    written += _write_private(args.output, result.files)
    out.write(''.join(path + '\n' for path in written))
    return 0


def _kubernetes(args: argparse.Namespace, calls: list[export.JobCall],
                config_dir: str | None) -> export.Export:
    return export.kubernetes(
        calls, source=args.app, image=args.image,
        starting_deadline=args.starting_deadline,
        history_limit=args.history_limit, backoff_limit=args.backoff_limit)


def _systemd(args: argparse.Namespace, calls: list[export.JobCall],
             config_dir: str | None) -> export.Export:
    assert config_dir is not None
    return export.systemd(calls, source=args.app, config_dir=config_dir,
                          randomized_delay=args.randomized_delay)


def _crontab(args: argparse.Namespace, calls: list[export.JobCall],
             config_dir: str | None) -> export.Export:
    assert config_dir is not None
    return export.crontab(calls, source=args.app, config_dir=config_dir)


def _history(app: CronApp, args: argparse.Namespace, out: TextIO) -> int:
    store = _store(app, args.app)
    name = None if args.job is None else _job_name(app, args.app, args.job)
    application_id = args.application_id or _default_id(app)
    runs = store.runs(application_id, name, limit=args.limit)
    if not runs:
        which = 'no runs' if name is None else f'no runs of {name}'
        out.write(f'{which} in application {application_id!r}\n')
        return 0
    rows = [['STARTED', 'JOB', 'TRIGGER', 'OUTCOME', 'DURATION',
             'SCHEDULED']]
    for run in runs:
        missed = missed_range(run)
        if missed is not None:
            # nothing ran: no start or duration, the range it stands for
            rows.append(['-', run.job, run.trigger.value,
                         f'missed {missed.count}', '-',
                         f'{_when(missed.first)} .. {_when(missed.last)}'])
            continue
        rows.append([_when(run.started), run.job, run.trigger.value,
                     'running' if run.outcome is None
                     else run.outcome.value,
                     _duration(run.duration), _when(run.scheduled)])
    _table(rows, out)
    return 0


def _status(app: CronApp, args: argparse.Namespace, out: TextIO) -> int:
    if app.store is not None:
        # application_ids() logs a failing store and carries on: a
        # command should stop at it, with one line
        app.store.schedulers()
    statuses = [collect(app, application_id)
                for application_id in app.application_ids()]
    if not statuses and not args.json:
        out.write('no application ids yet: a computed application_id is '
                  'known once a request or the store has seen it\n')
        return 0
    if args.json:
        out.write(json.dumps({'applications': [
            as_json(status) for status in statuses]}, indent=2) + '\n')
        return 0
    for i, status in enumerate(statuses):
        info = status.scheduler
        out.write(('\n' if i else '') + f'application {status.id}\n')
        out.write('  scheduler: ' + (
            'none seen' if info is None else
            f'{info.host} pid {info.pid}, alive since '
            f'{_when(info.alive_since)}, last heartbeat '
            f'{_when(info.heartbeat)}') + '\n')
        if status.held and status.hold is not None:
            out.write(f'  held since {_when(status.hold.since)}\n')
        if not status.stored:
            out.write('  no store: runs, switches and holds are not kept\n')
        out.write(f'  calls: {status.calls_running} running, '
                  f'{status.queued} queued\n')
        rows = [['  JOB', 'STATE', 'ENABLED', 'NEXT RUN', 'LAST RUN']]
        rows += [[f'  {job.name}', job.state, 'yes' if job.enabled else 'no',
                  _when(job.next_run, 'manual' if job.manual else '-'),
                  _last(job.last_run)] for job in status.jobs]
        _table(rows, out)
    return 0
