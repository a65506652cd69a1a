"""How the commands print: tables, moments, durations, a job's last run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TextIO

from onecron.stores.base import Run


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
