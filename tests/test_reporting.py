"""Reporting: every failure and slow run reaches the log and Sentry."""

from __future__ import annotations

import logging
import time
from datetime import timezone
from typing import Any

from onecron.clock import utcnow
from onecron.reporting import Reporter


def test_failure_with_exception(caplog: Any,
                                sentry_events: list[dict[str, Any]]) -> None:
    """An exception: ERROR with traceback, Sentry exception with tags."""
    try:
        raise KeyError('missing row')
    except KeyError as exc:
        with caplog.at_level(logging.ERROR, logger='onecron'):
            Reporter().failure('pkg.job', 'tenant', 'KeyError raised', exc)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info
    assert 'pkg.job' in record.getMessage()
    assert 'tenant' in record.getMessage()
    [event] = sentry_events
    assert event['exception']['values'][0]['type'] == 'KeyError'
    assert event['tags'] == {'onecron.job': 'pkg.job',
                             'onecron.application_id': 'tenant'}


def test_failure_without_exception(caplog: Any,
                                   sentry_events: list[dict[str, Any]]) -> None:
    """A failed call (no exception here): ERROR and a Sentry message."""
    with caplog.at_level(logging.ERROR, logger='onecron'):
        Reporter().failure('pkg.job', 'default', 'HTTP 502 in 0.01s')
    assert 'HTTP 502' in caplog.records[0].getMessage()
    [event] = sentry_events
    assert event['level'] == 'error'
    assert 'pkg.job' in event['message'] or 'pkg.job' in str(
        event.get('logentry'))


def test_slow(caplog: Any, sentry_events: list[dict[str, Any]]) -> None:
    """A slow run: WARNING with name, duration and limit; Sentry warning."""
    with caplog.at_level(logging.WARNING, logger='onecron'):
        Reporter().slow('pkg.job', 'default', 42.25, 30.0)
    message = caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.WARNING
    assert 'pkg.job' in message and '42.2' in message and '30.0' in message
    assert sentry_events[0]['level'] == 'warning'


def test_clock_is_aware_utc_now() -> None:
    """The default clock gives an aware UTC datetime of the current time."""
    now = utcnow()
    assert now.tzinfo is timezone.utc
    assert abs(now.timestamp() - time.time()) < 1
