"""The ``onecron`` command: look at, run and export an application's jobs.

``APP`` names a :class:`~onecron.CronApp` as gunicorn names an application,
``module:attribute``, imported with the current directory on ``sys.path``::

    onecron list example_app.app:app
    onecron run example_app.app:app example_app.app.morning_report
    onecron next APP JOB [--count N] [--after ISO-TIME]
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

import logging
import os
import sys
import traceback
from collections.abc import Sequence

from onecron.app import CronApp
from onecron.cli.errors import CommandError, _describe
from onecron.cli.loading import load
from onecron.cli.parser import _parser
from onecron.errors import OnecronError, UnknownJob

__all__ = ['main', 'run_command']


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
