"""Where slow and failed runs go: the log and Sentry.

The only module that imports :mod:`sentry_sdk`. Without ``sentry_sdk.init``
its capture functions do nothing, so the log is always the first channel.
"""

from __future__ import annotations

import logging

import sentry_sdk

log = logging.getLogger(__name__)


class Reporter:
    """Reports job failures and slow runs to the log and to Sentry.

    Pass your own subclass as ``CronApp(reporter=...)`` to send them
    elsewhere as well.
    """

    def failure(self, job: str, application_id: str, message: str,
                exc: BaseException | None = None) -> None:
        """A run of ``job`` failed: ERROR record and a Sentry event."""
        tags = {'onecron.job': job, 'onecron.application_id': application_id}
        if exc is not None:
            log.error('job %s (%s) failed: %s', job, application_id, message,
                      exc_info=exc)
            sentry_sdk.capture_exception(exc, tags=tags)
        else:
            log.error('job %s (%s) failed: %s', job, application_id, message)
            sentry_sdk.capture_message(
                f'onecron job {job} failed: {message}', level='error',
                tags=tags)

    def slow(self, job: str, application_id: str, duration: float,
             limit: float) -> None:
        """A run of ``job`` took longer than ``limit``: WARNING and event."""
        log.warning('job %s (%s) was slow: it took %.1fs (limit %.1fs)',
                    job, application_id, duration, limit)
        sentry_sdk.capture_message(
            f'onecron job {job} took {duration:.1f}s', level='warning',
            tags={'onecron.job': job, 'onecron.application_id': application_id})

    def __repr__(self) -> str:
        return f'<{type(self).__name__}>'
