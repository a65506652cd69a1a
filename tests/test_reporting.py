"""Reporting: every failure and slow run reaches the log and Sentry, once."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timezone
from pathlib import Path
from typing import Any

import pytest
import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration
from webob import Request

from onecron import CronApp
from onecron.reporting import Reporter
from onecron.schedule.clock import utcnow

from .conftest import SENTRY_DSN, LiveServer, SentryCapture, wait_for

Events = list[dict[str, Any]]
TAGS = {'onecron.job': 'pkg.job', 'onecron.application_id': 'tenant'}


@pytest.fixture(params=['default-integrations', 'logging-integration-off'])
def events(request: Any, sentry_events: Events) -> Events:
    """Sentry events with the default integrations, and again with the
    logging integration turned off, as an application may."""
    if request.param == 'logging-integration-off':
        # (disabled_integrations=[LoggingIntegration] does nothing once an
        # earlier init in the process has installed it)
        sentry_sdk.init(dsn=SENTRY_DSN, transport=SentryCapture(sentry_events),
                        default_integrations=False)
    return sentry_events


def test_failure_with_exception(caplog: Any, events: Events) -> None:
    """An exception: ERROR with traceback, one Sentry exception event with
    the job's tags."""
    try:
        raise KeyError('missing row')
    except KeyError as exc:
        with caplog.at_level(logging.ERROR, logger='onecron'):
            Reporter().failure('pkg.job', 'tenant', 'KeyError raised', exc)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.exc_info
    assert 'pkg.job' in record.getMessage()
    assert 'tenant' in record.getMessage()
    [event] = events
    assert event['exception']['values'][0]['type'] == 'KeyError'
    assert event['tags'] == TAGS


def test_failure_without_exception(caplog: Any, events: Events) -> None:
    """A failed call (no exception here): ERROR and one Sentry message
    with the job's tags."""
    with caplog.at_level(logging.ERROR, logger='onecron'):
        Reporter().failure('pkg.job', 'tenant', 'HTTP 502 in 0.01s')
    assert 'HTTP 502' in caplog.records[0].getMessage()
    [event] = events
    assert event['level'] == 'error'
    assert event['message'] == 'onecron job pkg.job failed: HTTP 502 in 0.01s'
    assert event['tags'] == TAGS


def test_slow(caplog: Any, events: Events) -> None:
    """A slow run: WARNING with name, duration and limit; one Sentry
    warning."""
    with caplog.at_level(logging.WARNING, logger='onecron'):
        Reporter().slow('pkg.job', 'tenant', 42.25, 30.0)
    message = caplog.records[0].getMessage()
    assert caplog.records[0].levelno == logging.WARNING
    assert 'pkg.job' in message and '42.2' in message and '30.0' in message
    [event] = events
    assert event['level'] == 'warning' and event['tags'] == TAGS


def test_slow_with_warnings_as_events(sentry_events: Events) -> None:
    """A logging integration that makes events of warnings adds none."""
    sentry_sdk.init(dsn=SENTRY_DSN, transport=SentryCapture(sentry_events),
                    integrations=[LoggingIntegration(
                        event_level=logging.WARNING)])
    Reporter().slow('pkg.job', 'tenant', 42.25, 30.0)
    [event] = sentry_events
    assert event['level'] == 'warning' and event['tags'] == TAGS


def test_failure_is_a_breadcrumb_of_later_events(
        sentry_events: Events) -> None:
    """The failure's log record is still a breadcrumb for what follows."""
    Reporter().failure('pkg.job', 'tenant', 'HTTP 502 in 0.01s')
    sentry_sdk.capture_message('later')
    later = sentry_events[-1]
    assert later['message'] == 'later'
    crumbs = later['breadcrumbs']['values']
    assert any(crumb['category'] == 'onecron.reporting'
               and crumb['level'] == 'error'
               and 'pkg.job (tenant) failed: HTTP 502' in crumb['message']
               for crumb in crumbs)


def test_other_onecron_errors_still_become_events(
        sentry_events: Events) -> None:
    """Only the reporter's own records are left out of the logging
    integration: other ERROR records under onecron still become events."""
    logging.getLogger('onecron.running.scheduler').error(
        'something else broke')
    [event] = sentry_events
    assert event['logentry']['formatted'] == 'something else broke'


# --- end to end: one event per failed run ---

def test_raising_job_is_one_event(events: Events) -> None:
    """A job that raises is one Sentry event, with its exception and tags."""
    app = CronApp(secret='s', enabled=False, base_url='http://example.org')

    @app.cronjob(minute=0, name='broken')
    def broken(request: Request) -> None:
        raise RuntimeError('broken')

    path = app.url_for('broken').removeprefix('http://example.org')
    assert Request.blank(path).get_response(app).status_int == 500
    [event] = events
    assert event['exception']['values'][0]['type'] == 'RuntimeError'
    assert event['tags'] == {'onecron.job': 'broken',
                             'onecron.application_id': 'default'}


def test_slow_job_is_one_event(events: Events) -> None:
    """A run over slow_after is one Sentry warning."""
    app = CronApp(secret='s', enabled=False, base_url='http://example.org',
                  slow_after=0.05)
    app.cronjob(minute=0, name='sluggish')(lambda request: time.sleep(0.1))
    path = app.url_for('sluggish').removeprefix('http://example.org')
    assert Request.blank(path).get_response(app).status_int == 200
    [event] = events
    assert event['level'] == 'warning'
    assert event['tags']['onecron.job'] == 'sluggish'


def _bad_gateway(environ: dict[str, Any], start_response: Any) -> Any:
    start_response('502 Bad Gateway', [('Content-Type', 'text/plain')])
    return [b'upstream down']


@pytest.mark.parametrize('answer', ['502', 'refused'])
def test_failed_call_is_one_event(tmp_path: Path, events: Events,
                                  live_server: Callable[..., LiveServer],
                                  answer: str) -> None:
    """A scheduled call answered with a 502, or refused, is one event."""
    if answer == '502':
        base_url = live_server(_bad_gateway).url
    else:
        closed = live_server(_bad_gateway)
        base_url = closed.url
        closed.close()  # nothing listens on its port any more
    app = CronApp(secret='s', lock_dir=str(tmp_path))
    app.cronjob('* * * * * *', name='remote', jitter=False, once=True)(
        lambda request: None)
    try:
        app.start(base_url=base_url)
        wait_for(lambda: events)
        time.sleep(0.3)  # a second event would come right after the first
    finally:
        app.stop()
    [event] = events
    assert event['level'] == 'error'
    expected = 'HTTP 502' if answer == '502' else 'call failed'
    assert expected in event['message']
    assert event['tags']['onecron.job'] == 'remote'


def test_clock_is_aware_utc_now() -> None:
    """The default clock gives an aware UTC datetime of the current time."""
    now = utcnow()
    assert now.tzinfo is timezone.utc
    assert abs(now.timestamp() - time.time()) < 1
