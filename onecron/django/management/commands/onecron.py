"""``python manage.py onecron ...``: the ``onecron`` commands for the
project's CronApp (``list``, ``run JOB``, ``history``, ``status``,
``export``, ...), with their output, errors and exit statuses."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, ClassVar, NoReturn

from django.core.management.base import BaseCommand, CommandError
from django.db import connections

from onecron.cli import run_command
from onecron.django import get_cronapp

PROG = 'manage.py onecron'

#: the options manage.py itself handled already
_DJANGO_OPTIONS = ('--settings', '--pythonpath')


class Command(BaseCommand):  # type: ignore[misc]
    help = ("onecron's commands for the project's jobs: list, run JOB, "
            'history, status, export, ... (see: manage.py onecron --help)')
    requires_system_checks: ClassVar[list[str]] = []

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument('args', nargs=argparse.REMAINDER,
                            help='the onecron command and its arguments')

    def run_from_argv(self, argv: list[str]) -> NoReturn:
        """From the command line: onecron parses everything after
        ``onecron`` and says what is wrong as the ``onecron`` command
        does."""
        try:
            code = run_command(get_cronapp(), _without_django(argv[2:]),
                               prog=PROG)
        finally:
            connections.close_all()
        sys.exit(code)

    def handle(self, *args: str, **options: Any) -> None:
        """From ``call_command``: the output goes to its ``stdout`` and
        ``stderr``; a non-zero exit status raises CommandError."""
        with contextlib.redirect_stdout(options.get('stdout') or sys.stdout), \
                contextlib.redirect_stderr(options.get('stderr')
                                           or sys.stderr):
            code = run_command(get_cronapp(), args, prog=PROG)
        if code:
            raise CommandError(f'{PROG} {" ".join(args[:1])} failed '
                               f'(exit status {code})', returncode=code)


def _without_django(argv: Sequence[str]) -> list[str]:
    """``argv`` without ``--settings`` and ``--pythonpath``, which
    manage.py read before it ran the command."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _DJANGO_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(f'{name}=' for name in
                                      _DJANGO_OPTIONS)):
            kept.append(arg)
    return kept
