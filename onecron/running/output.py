"""What a job prints to the log while it runs, kept for its run record.

onecron wraps the logging module's record factory rather than adding a
handler to the root logger: a root handler would make the application's
later ``logging.basicConfig()`` a no-op, and would silence the "last
resort" handler that prints warnings of an application that never set up
logging. The factory sees every record a logger lets through, in the
thread that emits it, and keeps it only while that thread is inside
:func:`captured`, so concurrent jobs in other threads of the worker never
mix their output.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

#: lines kept per run; the store bounds the text again
MAX_LINES = 1000

_FORMATTER = logging.Formatter(
    '%(asctime)s %(levelname)s %(name)s: %(message)s')

#: the lines of the runs in progress, by thread
_buffers: dict[int, list[str]] = {}
_installing = threading.Lock()
#: marks a record kept already, by a factory of ours further down
_KEPT = '_onecron_kept'


class _Factory:
    """A record factory that keeps a copy of what runs log, then hands
    the record on; it calls the factory it replaced to make it.

    Another library may wrap it in turn, or replace it and have
    :func:`captured` wrap theirs again: a record is kept once either way.
    """

    def __init__(self, make: Callable[..., logging.LogRecord]) -> None:
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.make(*args, **kwargs)
        lines = _buffers.get(threading.get_ident())
        if lines is None or hasattr(record, _KEPT):
            return record
        setattr(record, _KEPT, True)  # once, however often ours is nested
        if len(lines) < MAX_LINES:
            try:
                lines.append(_FORMATTER.format(record))
            except Exception:  # a broken record must not break the job
                lines.append(f'{record.levelname} {record.name}: '
                             f'(unformattable record)')
        return record


def _install() -> None:
    """Make the record factory ours, on top of whatever it is now (again,
    if someone has since replaced it without keeping ours)."""
    with _installing:
        current = logging.getLogRecordFactory()
        if not isinstance(current, _Factory):
            logging.setLogRecordFactory(_Factory(current))


@contextmanager
def captured() -> Iterator[list[str]]:
    """Collect the formatted log records this thread emits, in a list."""
    if not isinstance(logging.getLogRecordFactory(), _Factory):
        _install()
    lines: list[str] = []
    ident = threading.get_ident()
    _buffers[ident] = lines
    try:
        yield lines
    finally:
        _buffers.pop(ident, None)
