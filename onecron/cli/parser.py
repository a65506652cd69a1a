"""The ``onecron`` command line: its commands, their options and the
checks of their values; :func:`_parser` builds it."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import NoReturn

from onecron import __version__
from onecron.cli import export
from onecron.cli.commands import (
    Command,
    _crontab,
    _export,
    _history,
    _kubernetes,
    _list,
    _run,
    _status,
    _systemd,
    _url,
)
from onecron.cli.errors import UsageError
from onecron.cli.next import add_next_parser, next_command


class _Parser(argparse.ArgumentParser):
    """Reports a usage error on one line, like every other error."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f'{message} (see: {self.prog} --help)')


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

    add_next_parser(command('next', next_command, "Print a job's next "
                            'fire times, and which a DST change moved or '
                            'repeated.'))

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
