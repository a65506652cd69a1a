"""Where slow and failed runs go: the log and Sentry.

With :mod:`onecron.running.checkins` (Sentry Crons), the only module that
imports :mod:`sentry_sdk`. Without ``sentry_sdk.init`` its capture
functions do nothing, so the log is always the first channel.

Each report is one Sentry event, sent here with the job's tags. Sentry's
logging integration (on by default) would make a second, untagged event of
the ERROR record, so it is told to ignore this module's logger, and the
record becomes a breadcrumb here instead, as the integration would have
made it.

While a job runs, its URL's token is a secret that what it logs or
raises may quote (``request.url``, a frame's local ``request``):
:func:`redacting` replaces it with ``[token]`` in every Sentry event sent
meanwhile from that thread, and in this module's log records. Sentry's own
integrations add the request's URL (an error's ``request``, a
transaction's name and spans) after the global event processors ran, and
a transaction is sent after the job's context ended: so every path
segment under a job endpoint's prefix that is shaped like a token
(:func:`watch_prefix`) is replaced too, and the scrubbing also runs last,
chained onto the client's ``before_send`` and ``before_send_transaction``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.logging import LoggingIntegration, ignore_logger
from sentry_sdk.scope import add_global_event_processor

log = logging.getLogger(__name__)
# only the Reporter logs here, and it sends every record itself; other
# onecron loggers (and the application's) still reach Sentry as usual
ignore_logger(log.name)

#: what stands for a secret in a report
REDACTED = '[token]'
#: the secrets of what runs in this context, to keep out of reports
_secrets: ContextVar[tuple[str, ...]] = ContextVar('onecron_secrets',
                                                   default=())

#: the job endpoints' prefixes in this process, and what matches a token
#: under one of them: a path segment of 20 or more URL-safe characters
#: (signed tokens are longer; the status page's own paths are shorter)
_prefixes: set[str] = set()
_token_paths: re.Pattern[str] | None = None
_watching = threading.Lock()

_FAILED = 'job %s (%s) failed: %s'
_SLOW = 'job %s (%s) was slow: it took %.1fs (limit %.1fs)'


class Reporter:
    """Reports job failures and slow runs to the log and to Sentry.

    Pass your own subclass as ``CronApp(reporter=...)`` to send them
    elsewhere as well.
    """

    def failure(self, job: str, application_id: str, message: str,
                exc: BaseException | None = None) -> None:
        """A run of ``job`` failed: ERROR record and one Sentry event."""
        tags = {'onecron.job': job, 'onecron.application_id': application_id}
        args = (job, application_id, message)
        if exc is not None:
            log.error(_FAILED, *args, exc_info=exc)
            sentry_sdk.capture_exception(exc, tags=tags)
        else:
            log.error(_FAILED, *args)
            sentry_sdk.capture_message(
                f'onecron job {job} failed: {message}', level='error',
                tags=tags)
        _breadcrumb('error', _FAILED % args)

    def slow(self, job: str, application_id: str, duration: float,
             limit: float) -> None:
        """A run of ``job`` took longer than ``limit``: WARNING and one
        Sentry event."""
        args = (job, application_id, duration, limit)
        log.warning(_SLOW, *args)
        sentry_sdk.capture_message(
            f'onecron job {job} took {duration:.1f}s', level='warning',
            tags={'onecron.job': job,
                  'onecron.application_id': application_id})
        _breadcrumb('warning', _SLOW % args)

    def __repr__(self) -> str:
        return f'<{type(self).__name__}>'


@contextmanager
def redacting(secret: str) -> Iterator[None]:
    """Keep ``secret`` out of Sentry events and this module's log records
    made in this context (a thread, while a job runs)."""
    reset = _secrets.set((*_secrets.get(), secret))
    _guard_client()
    try:
        yield
    finally:
        _secrets.reset(reset)


def redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` with each of ``secrets`` replaced in every str in it
    (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, dict):
        return {redact(key, secrets): redact(item, secrets)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact(item, secrets) for item in value)
    return value


def watch_prefix(prefix: str) -> None:
    """From now on, scrub token-shaped path segments under ``prefix`` (a
    job endpoint's) from every Sentry event of this process, whoever adds
    them, and keep the scrubbing last in the client's chain."""
    global _token_paths
    with _watching:
        if prefix not in _prefixes:
            _prefixes.add(prefix)
            alternatives = '|'.join(re.escape(known.rstrip('/'))
                                    for known in sorted(_prefixes))
            _token_paths = re.compile(
                f'({alternatives})((?:/[ot])?)/[A-Za-z0-9_.~%-]{{20,}}')
    _guard_client()


def _scrub_paths(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, str):
        return pattern.sub(lambda match: f'{match.group(1)}{match.group(2)}'
                           f'/{REDACTED}', value)
    if isinstance(value, dict):
        return {_scrub_paths(key, pattern): _scrub_paths(item, pattern)
                for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_scrub_paths(item, pattern) for item in value)
    return value


def _scrub_event(event: Any, hint: Any) -> Any:
    secrets = _secrets.get()
    if secrets:
        event = redact(event, secrets)
    pattern = _token_paths
    return event if pattern is None else _scrub_paths(event, pattern)


def _last(previous: Any) -> Any:
    """A ``before_send`` that runs ``previous`` (the user's), then scrubs."""
    def scrub_last(event: Any, hint: Any) -> Any:
        if callable(previous):
            event = previous(event, hint)
        return None if event is None else _scrub_event(event, hint)
    scrub_last._onecron = True  # type: ignore[attr-defined]
    return scrub_last


def _guard_client() -> None:
    """Chain the scrubbing onto the active client's ``before_send`` and
    ``before_send_transaction``, which run after every event processor
    (once per client: a client made later is guarded at the next run)."""
    options = getattr(sentry_sdk.get_client(), 'options', None)
    if not isinstance(options, dict):
        return
    for key in ('before_send', 'before_send_transaction'):
        if not getattr(options.get(key), '_onecron', False):
            options[key] = _last(options.get(key))


class _Scrub(logging.Filter):
    """Rewrites a record of a report made while a job's token is secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = _secrets.get()
        if secrets:
            record.msg = redact(record.getMessage(), secrets)
            record.args = None
            if record.exc_info:
                text = logging.Formatter().formatException(record.exc_info)
                redacted = redact(text, secrets)
                if redacted != text:
                    # a handler would format the exception anew: only
                    # the redacted text may reach it
                    record.exc_text = redacted
                    record.exc_info = None
        return True


add_global_event_processor(_scrub_event)
log.addFilter(_Scrub())


def _breadcrumb(level: str, message: str) -> None:
    """The breadcrumb the logging integration would have made of the
    ignored record, so that later events still show the report."""
    if sentry_sdk.get_client().get_integration(LoggingIntegration) is None:
        return  # the application turned log breadcrumbs off
    secrets = _secrets.get()
    sentry_sdk.add_breadcrumb(type='log', category=log.name, level=level,
                              message=redact(message, secrets))


class CallbackFailures:
    """Reports the exceptions of the application's callbacks
    (``status_access``, ``job_access``, ``application_id``,
    ``should_run``) through ``reporter``: once per callback and exception
    type, so that requests that make a callback fail cannot flood the log
    or Sentry. Whatever a callback's failure stands for is refused by
    the caller, never taken as a yes or a made-up tenant.
    """

    #: the (callback, exception type) pairs remembered, at most
    LIMIT = 1000

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self._seen: set[tuple[str, type[BaseException]]] = set()
        self._lock = threading.Lock()

    def report(self, callback: str, exc: BaseException, consequence: str,
               *, job: str = '*', application_id: str = '*') -> None:
        """``callback`` raised ``exc``: report it unless its type was
        reported for ``callback`` already (then a DEBUG line)."""
        key = (callback, type(exc))
        with self._lock:
            first = key not in self._seen and len(self._seen) < self.LIMIT
            if first:
                self._seen.add(key)
        if not first:
            log.debug('the %s callable raised %s again: %s', callback,
                      type(exc).__name__, consequence)
            return
        self.reporter.failure(
            job, application_id, f'the {callback} callable raised '
            f'{type(exc).__name__}: {consequence} (reported once per '
            f'exception type)', exc)

    def __repr__(self) -> str:
        return f'<CallbackFailures {len(self._seen)} reported>'
