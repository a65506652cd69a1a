"""What a job prints to the log while it runs, kept for its run record.

One handler on the root logger serves every thread: it keeps a record only
while the emitting thread is inside :func:`captured`, so concurrent jobs in
other threads of the worker never mix their output.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: lines kept per run; the store bounds the text again
MAX_LINES = 1000


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter(
            '%(asctime)s %(levelname)s %(name)s: %(message)s'))
        self.buffers: dict[int, list[str]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        lines = self.buffers.get(threading.get_ident())
        if lines is not None and len(lines) < MAX_LINES:
            try:
                lines.append(self.format(record))
            except Exception:  # a broken record must not break the job
                lines.append(f'{record.levelname} {record.name}: '
                             f'(unformattable record)')


_handler = _Capture()
_installed = threading.Lock()


@contextmanager
def captured() -> Iterator[list[str]]:
    """Collect the formatted log records this thread emits, in a list."""
    root = logging.getLogger()
    if _handler not in root.handlers:  # once, unless someone removed it
        with _installed:
            if _handler not in root.handlers:
                root.addHandler(_handler)
    lines: list[str] = []
    ident = threading.get_ident()
    _handler.buffers[ident] = lines
    try:
        yield lines
    finally:
        _handler.buffers.pop(ident, None)
