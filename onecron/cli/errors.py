"""What the ``onecron`` command reports when it fails: one line, and an
exit status (2 for a malformed command line, 1 for everything else)."""

from __future__ import annotations

from onecron.errors import UnknownJob


class CommandError(Exception):
    """What the command reports on one line before it exits with ``code``."""

    code = 1


class UsageError(CommandError):
    """A malformed command line (exit status 2)."""

    code = 2


def _describe(exc: BaseException) -> str:
    """``Type: message`` on one line."""
    if isinstance(exc, UnknownJob):
        text = f'unknown job {exc.args[0]!r}' if exc.args else ''
    else:
        text = str(exc)
    text = ' '.join(text.split())
    return f'{type(exc).__name__}: {text}' if text else type(exc).__name__
