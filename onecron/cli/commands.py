"""The ``onecron`` command: look at, run and export an application's jobs.

``APP`` names a :class:`~onecron.CronApp` as gunicorn names an application,
``module:attribute``, imported with the current directory on ``sys.path``::

    onecron list example_app.app:app
    onecron run example_app.app:app example_app.app.morning_report
    onecron url example_app.app:app JOB --base-url https://example.org
    onecron export kubernetes|systemd|crontab APP --base-url URL [--output DIR]
    onecron history APP [JOB]
    onecron status APP [--json]

Errors are one line on stderr, ``onecron: error: ...``, and the exit status
is 2 for a malformed command line, 1 for everything else (an unknown
module, attribute or job, a failing store, a job that failed) and 130 for
Ctrl-C. ``--traceback`` shows the traceback behind an error.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import json
import logging
import math
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from types import GetSetDescriptorType, ModuleType
from typing import NoReturn, TextIO
from urllib.parse import urlsplit

from webob import Request

from onecron import __version__
from onecron.app import CronApp
from onecron.cli import export
from onecron.errors import OnecronError, UnknownJob
from onecron.protocol.headers import RUN_HEADER, TRIGGER_HEADER
from onecron.running import autostart
from onecron.running.lock import JobLocks
from onecron.stores.base import Run, Store, Trigger
from onecron.stores.history import missed_range
from onecron.web.status.model import as_json, collect

__all__ = ['CommandError', 'load', 'main', 'run_command']

log = logging.getLogger(__name__)


class CommandError(Exception):
    """What the command reports on one line before it exits with ``code``."""

    code = 1


class UsageError(CommandError):
    """A malformed command line (exit status 2)."""

    code = 2


class _Parser(argparse.ArgumentParser):
    """Reports a usage error on one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f'{message} (see: {self.prog} --help)')


class _OneLine(logging.Formatter):
    """``onecron: warning: message``; tracebacks only when asked for."""

    def __init__(self, tracebacks: bool) -> None:
        super().__init__()
        self.tracebacks = tracebacks

    def format(self, record: logging.LogRecord) -> str:
        text = f'onecron: {record.levelname.lower()}: {record.getMessage()}'
        if self.tracebacks and record.exc_info:
            text += '\n' + self.formatException(record.exc_info)
        return text


# -- loading the application -------------------------------------------------

def load(spec: str) -> CronApp:
    """The :class:`~onecron.CronApp` that ``module:attribute`` names.

    The current directory goes first on ``sys.path``, as gunicorn puts it;
    the attribute may be dotted (``module:holder.app``).

    :raises CommandError: naming what is missing or what went wrong
    """
    module_name, colon, attribute = spec.partition(':')
    if not colon or not module_name or not attribute:
        raise UsageError(f'APP must be module:attribute, such as '
                         f'example_app.app:app, got {spec!r}')
    # looking at an app must not schedule its jobs, whatever it says
    autostart.disable()
    here = os.getcwd()
    if here not in sys.path and '' not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ''
        if module_name == missing or module_name.startswith(missing + '.'):
            raise CommandError(
                f'no module named {missing!r} (APP {spec!r}): run onecron '
                f'where the module is, or put it on PYTHONPATH') from exc
        raise CommandError(f'importing {module_name!r} failed: '
                           f'{_describe(exc)}') from exc
    except (Exception, SystemExit) as exc:
        raise CommandError(f'importing {module_name!r} failed: '
                           f'{_describe(exc)}') from exc
    found: object = module
    for part in attribute.split('.'):
        try:
            found = getattr(found, part)
        except AttributeError:
            places = _cron_apps(module, module_name, [])
            raise CommandError(f'module {module_name!r} has no attribute '
                               f'{attribute!r}'
                               + (_naming(places) if places else '')
                               ) from None
    if not isinstance(found, CronApp):
        places = _cron_apps(module, module_name, [(attribute, found)])
        raise CommandError(
            f'{spec} is a {type(found).__name__}, not a onecron.CronApp'
            + (_naming(places) if places else
               f'; module {module_name!r} holds none: name the CronApp '
               f'that wraps your WSGI application'))
    return found


#: where WSGI wrappers keep the application they wrap: Flask's
#: ``app.wsgi_app = CronApp(app.wsgi_app)``, ``.app`` of werkzeug's and
#: Sentry's middleware, ``.application`` of WhiteNoise
_WRAPPED = ('wsgi_app', 'app', 'application', 'wrapped')


def _cron_apps(module: ModuleType, module_name: str,
               start: list[tuple[str, object]]) -> list[list[str]]:
    """Each :class:`~onecron.CronApp` ``module`` holds, as the
    ``module:attribute`` names that reach it.

    ``start`` and the module's globals come first, then what they wrap,
    two levels down (:data:`_WRAPPED`). Only instance dictionaries are
    read, so no property, proxy or ``__getattr__`` of the application
    runs.
    """
    places: dict[int, list[str]] = {}
    named: set[str] = set()
    seen: set[int] = set()
    level = start + [(name, value) for name, value in vars(module).items()
                     if not issubclass(type(value), ModuleType)]
    for _ in range(3):
        below: list[tuple[str, object]] = []
        for path, value in level:
            if path in named:
                continue
            named.add(path)
            if issubclass(type(value), CronApp):
                places.setdefault(id(value), []).append(
                    f'{module_name}:{path}')
                continue
            if id(value) in seen:
                continue
            seen.add(id(value))
            attributes = _instance_dict(value)
            below += [(f'{path}.{key}', attributes[key])
                      for key in _WRAPPED if key in attributes]
        level = below
    return list(places.values())


def _instance_dict(value: object) -> Mapping[str, object]:
    """``value.__dict__`` if it is the plain one Python keeps, else
    nothing: a proxy's ``__dict__`` (werkzeug's ``current_app``) would run
    its code, and fail outside a request."""
    for klass in type(value).__mro__:
        descriptor = vars(klass).get('__dict__')
        if descriptor is not None:
            if isinstance(descriptor, GetSetDescriptorType):
                attributes = descriptor.__get__(value, type(value))
                if isinstance(attributes, Mapping):
                    return attributes
            break
    return {}


def _naming(places: list[list[str]]) -> str:
    """``; the CronApp is m:cron (also m:app.wsgi_app)``."""
    names = [paths[0] + (f' (also {" or ".join(paths[1:])})'
                         if len(paths) > 1 else '') for paths in places]
    if len(names) == 1:
        return f'; the CronApp is {names[0]}'
    return f'; the CronApps are {", ".join(names[:-1])} and {names[-1]}'


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    if isinstance(exc, UnknownJob):
        text = f'unknown job {exc.args[0]!r}' if exc.args else ''
    else:
        text = str(exc)
    text = ' '.join(text.split())
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__


def _job_name(app: CronApp, spec: str, name: str) -> str:
    """``name`` if ``app`` has such a job; else an error with suggestions."""
    if name in app.jobs:
        return name
    names = sorted(app.jobs)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    # the function's name alone, without its module
    tails = {job.rpartition('.')[2]: job for job in names}
    close += [tails[tail] for tail in difflib.get_close_matches(
        name.rpartition('.')[2], tails, n=3, cutoff=0.8)
        if tails[tail] not in close]
    hint = (f'; did you mean {" or ".join(map(repr, close[:3]))}?' if close
            else f'; {spec} has {_count(len(names), "job")}'
            + (f': {", ".join(names[:5])}' + (', ...' if len(names) > 5
                                              else '') if names else ''))
    raise CommandError(f'no job named {name!r}{hint}')


def _count(n: int, noun: str) -> str:
    return f'{n} {noun}{"s" * (n != 1)}'


def _default_id(app: CronApp) -> str:
    return app.application_id if isinstance(app.application_id,
                                            str) else 'default'


def _store(app: CronApp, spec: str) -> Store:
    if app.store is None:
        raise CommandError(f'{spec} keeps no history: configure '
                           f'CronApp(store=...)')
    return app.store


def _base_url(text: str) -> str:
    if not text.startswith(('http://', 'https://')):
        raise argparse.ArgumentTypeError(
            f'must be an http(s) URL, got {text!r}')
    return text.rstrip('/')


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f'must be a whole number of at least 1, got {text!r}')
    return value


def _not_negative(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f'must be a whole number of 0 or more, got {text!r}')
    return int(text)


# -- output -------------------------------------------------------------------

def _table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Columns padded to their widest cell; the last one is not."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths)]
        out.write('  '.join([*cells, row[-1]]).rstrip() + '\n')


def _when(moment: datetime | None, empty: str = '-') -> str:
    return empty if moment is None else moment.isoformat(' ', 'seconds')


def _duration(seconds: float | None) -> str:
    return '-' if seconds is None else f'{seconds:.2f}s'


def _last(run: Run | None) -> str:
    if run is None:
        return 'never'
    outcome = 'running' if run.outcome is None else run.outcome.value
    took = '' if run.duration is None else f', {_duration(run.duration)}'
    return f'{_when(run.started)} ({outcome}{took})'


# -- the commands -------------------------------------------------------------

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


def _private_dir(path: str) -> int:
    """A descriptor of the directory ``path``, made (parents too) with mode
    0700 where missing.

    :raises CommandError: for a directory that another user owns or that
        every user may write to, where files could be swapped under us
    """
    path = os.path.abspath(path)
    missing = []
    head = path
    while not os.path.lexists(head):
        missing.append(head)
        head = os.path.dirname(head)
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            continue
        os.chmod(directory, 0o700)  # whatever the umask
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    info = os.fstat(descriptor)
    if info.st_uid not in (os.geteuid(), 0) or info.st_mode & 0o002:
        os.close(descriptor)
        whose = ('writable by every user' if info.st_mode & 0o002
                 else f'owned by user id {info.st_uid}')
        raise CommandError(f'{path} is {whose}: pick a directory of your '
                           f'own for files that hold job URLs')
    return descriptor


def _write_private(directory: str,
                   files: Sequence[tuple[str, str]]) -> list[str]:
    """Write ``files`` (name, text) into ``directory``, each readable by
    its owner only (0600, whatever the umask); their paths.

    Each is written to a new file (``O_EXCL``, ``O_NOFOLLOW``) and renamed
    over the old one, which replaces a symbolic link or a file with wider
    modes rather than writing through it.
    """
    try:
        descriptor = _private_dir(directory)
    except OSError as exc:
        raise CommandError(f'cannot use {directory}: {exc.strerror}') from exc
    paths = []
    try:
        for name, text in files:
            path = os.path.join(os.path.abspath(directory), name)
            temporary = f'.{name}.{uuid.uuid4().hex[:12]}'
            try:
                handle = os.open(temporary, os.O_WRONLY | os.O_CREAT
                                 | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                                 0o600, dir_fd=descriptor)
                try:
                    with open(handle, 'w', encoding='utf-8') as file:
                        os.fchmod(handle, 0o600)  # whatever the umask
                        file.write(text)
                        file.flush()
                        os.fsync(handle)
                    os.replace(temporary, name, src_dir_fd=descriptor,
                               dst_dir_fd=descriptor)
                except BaseException:
                    with contextlib.suppress(OSError):
                        os.unlink(temporary, dir_fd=descriptor)
                    raise
            except OSError as exc:
                raise CommandError(f'cannot write {path}: '
                                   f'{exc.strerror}') from exc
            paths.append(path)
    finally:
        os.close(descriptor)
    return paths


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


# -- the command line ---------------------------------------------------------

Command = Callable[[CronApp, argparse.Namespace, TextIO], int]


def _parser(prog: str = 'onecron', with_app: bool = True) -> _Parser:
    """The command line; without ``APP`` for a framework's command group,
    which knows its application already."""
    parser = _Parser(
        prog=prog, description='Look at, run and export the cron jobs '
        'of a onecron application.',
        epilog='APP is module:attribute, as for gunicorn; the current '
        'directory is on the module path.' if with_app else None)
    parser.add_argument('--version', action='version',
                        version=f'onecron {__version__}')
    parser.add_argument('--traceback', action='store_true',
                        help='show the traceback behind an error')
    parser.add_argument('-v', '--verbose', action='store_true',
                        help='show informational log lines too')
    commands = parser.add_subparsers(dest='command', required=True,
                                     metavar='COMMAND')

    def command(name: str, handler: Command, text: str) -> _Parser:
        sub: _Parser = commands.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=handler)
        if with_app:
            sub.add_argument('app', metavar='APP',
                             help='the CronApp, as module:attribute')
        return sub

    def application_id(sub: _Parser) -> None:
        sub.add_argument('--application-id', metavar='ID',
                         help="the application id (default: the app's own, "
                         "or 'default')")

    sub = command('list', _list, 'List the jobs, their schedules and when '
                  'they run next.')
    application_id(sub)
    sub.add_argument('--next', type=_positive, default=1, metavar='N',
                     help='show the next N runs of each job (default 1)')

    sub = command('run', _run, 'Run a job once now, in this process, '
                  "through the job's URL.")
    sub.add_argument('job', metavar='JOB')
    sub.add_argument('--base-url', type=_base_url, metavar='URL',
                     help='the URL the request appears to come to, which '
                     'multi-tenant apps take the application id from, and '
                     "where chained jobs are called (default: the app's "
                     'base_url, else http://localhost)')

    sub = command('url', _url, "Print a job's signed URL.")
    sub.add_argument('job', metavar='JOB')
    sub.add_argument('--base-url', type=_base_url, metavar='URL',
                     help="the application's URL (default: the app's "
                     'base_url)')
    sub.add_argument('--occurrence', choices=['nearest'],
                     help="'nearest': the URL stands for the occurrence "
                     'nearest the call, which runs once however often it '
                     'is called')
    application_id(sub)

    sub = command('history', _history, 'Show the newest runs from the '
                  'store.')
    sub.add_argument('job', metavar='JOB', nargs='?',
                     help='only the runs of this job')
    application_id(sub)
    sub.add_argument('--limit', type=_positive, default=20, metavar='N',
                     help='show at most N runs (default 20)')

    sub = command('status', _status, 'Show the scheduler and the state of '
                  'each job, per application id.')
    sub.add_argument('--json', action='store_true',
                     help='print what status.json gives')

    exporter = commands.add_parser(
        'export', help='Write the jobs as Kubernetes CronJobs, systemd '
        'timers or crontab lines.',
        description='Write the jobs as Kubernetes CronJobs, systemd timers '
        'or crontab lines that call their URLs with curl. Jobs without a '
        'schedule, or with one the target cannot express, are left out '
        'with a comment.')
    formats = exporter.add_subparsers(dest='format', required=True,
                                      metavar='FORMAT')

    def target(name: str, render: Callable[..., export.Export], text: str,
               occurrence: str, configs: str | None = None) -> _Parser:
        sub: _Parser = formats.add_parser(name, help=text, description=text)
        sub.set_defaults(handler=_export, render=render, configs=configs)
        if with_app:
            sub.add_argument('app', metavar='APP',
                             help='the CronApp, as module:attribute')
        sub.add_argument('--base-url', type=_base_url, metavar='URL',
                         help='where the jobs are reachable from the '
                         "caller (default: the app's base_url)")
        sub.add_argument('--max-time', type=_positive, metavar='SECONDS',
                         help="curl's time limit (default: the job's "
                         "timeout, else the app's trigger_timeout)")
        sub.add_argument('--occurrence', choices=['nearest', 'none'],
                         default=occurrence,
                         help="'nearest': a URL that runs each occurrence "
                         f"once, however often it is called (default "
                         f"{occurrence})")
        sub.add_argument('--strict', action='store_true',
                         help='fail on a schedule the target cannot '
                         'express instead of leaving the job out')
        application_id(sub)
        if configs is None:
            sub.add_argument('--output', metavar='DIR',
                             help='write the files into DIR (made 0700 if '
                             'missing; files 0600) instead of stdout')
            return sub
        sub.add_argument('--output', metavar='DIR',
                         help=f'write the {configs} and the curl config '
                         'files holding the job URLs into DIR (made 0700 if '
                         'missing; files 0600)')
        sub.add_argument('--config-dir', metavar='DIR',
                         help='write the curl config files into DIR '
                         f'instead, and the {configs} to stdout unless '
                         '--output is given')
        return sub

    sub = target('kubernetes', _kubernetes, 'batch/v1 CronJobs and a '
                 'Secret with their URLs, as YAML.', 'nearest')
    sub.add_argument('--image', default='curlimages/curl:8.10.1',
                     help='the image with curl (default %(default)s)')
    sub.add_argument('--starting-deadline', type=_positive, default=300,
                     metavar='SECONDS', help='startingDeadlineSeconds '
                     '(default %(default)s)')
    sub.add_argument('--history-limit', type=_not_negative, default=3,
                     metavar='N', help='successful and failed jobs kept '
                     '(default %(default)s)')
    sub.add_argument('--backoff-limit', type=_not_negative, default=0,
                     metavar='N', help='retries of a failed call (default '
                     '%(default)s: onecron reports a failed run itself)')
    sub = target('systemd', _systemd, 'A .service and a .timer per job; '
                 'curl reads the URL from a private config file (curl -K).',
                 'none', configs='units')
    sub.add_argument('--randomized-delay', type=_positive,
                     metavar='SECONDS', help='RandomizedDelaySec= of the '
                     'timers (default: none)')
    target('crontab', _crontab, 'Crontab lines, with CRON_TZ= per zone; '
           'curl reads the URL from a private config file (curl -K).',
           'none', configs='crontab')
    return parser


def _log_to_stderr(tracebacks: bool, verbose: bool) -> logging.Handler:
    """Log records as one line each on stderr; the handler added."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine(tracebacks))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    return handler


def _fail(exc: BaseException, tracebacks: bool) -> None:
    if tracebacks:
        traceback.print_exception(exc, file=sys.stderr)
    if isinstance(exc, CommandError):
        message = str(exc)
    elif isinstance(exc, OnecronError) and not isinstance(exc, UnknownJob):
        message = str(exc)  # says what went wrong, as the user should read it
    else:
        message = f'unexpected {_describe(exc)} (see it with --traceback)'
    sys.stderr.write(f'onecron: error: {" ".join(message.split())}\n')


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``onecron`` command; the exit status."""
    return _main(sys.argv[1:] if argv is None else list(argv))


def run_command(app: CronApp, argv: Sequence[str],
                prog: str = 'onecron') -> int:
    """Run one ``onecron`` command for *app*, which the command line then
    does not name (``list``, ``run JOB``, ``history``, ...); the exit status.

    This is what the framework integrations' command groups (``flask
    onecron ...``, ``manage.py onecron ...``) call: the same commands,
    errors and exit codes as the ``onecron`` command.
    """
    return _main(list(argv), app, prog)


def _main(arguments: list[str], given: CronApp | None = None,
          prog: str = 'onecron') -> int:
    tracebacks = False
    root = logging.getLogger()
    level = root.level
    handler = None
    try:
        args = _parser(prog, with_app=given is None).parse_args(arguments)
        tracebacks = args.traceback
        handler = _log_to_stderr(tracebacks, args.verbose)
        if given is None:
            app = load(args.app)
        else:
            app = given
            args.app = prog  # what messages and exported files name
        code: int = args.handler(app, args, sys.stdout)
        sys.stdout.flush()
        return code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # the reader went away (onecron ... | head): say nothing more
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except CommandError as exc:
        _fail(exc, tracebacks)
        return exc.code
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:
        _fail(exc, tracebacks)
        return 1
    finally:
        if handler is not None:
            root.removeHandler(handler)
            root.setLevel(level)


if __name__ == '__main__':
    sys.exit(main())
