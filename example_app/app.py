"""The example application: a plain WebOb app with a few cron jobs.

Run it with ``python -m example_app``; the jobs log a line each time they
run. The same jobs are reachable from outside at their signed URLs:
``onecron url example_app.app:app JOB`` prints one (keep it private: it
runs the job).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from webob import Request, Response
from webob.dec import wsgify

from onecron import CronApp

log = logging.getLogger('example_app')


@wsgify
def website(request: Request) -> Response:
    """The application itself: it knows nothing about cron jobs."""
    return Response(f'Hello from the example app at {request.path}\n',
                    content_type='text/plain')


app = CronApp(
    website,
    # the secret comes from the environment; without ONECRON_SECRET the
    # placeholder below is used, and onecron warns that it is one
    secret=os.environ.get('ONECRON_SECRET', 'change-me-in-production'),
    base_url=os.environ.get('ONECRON_BASE_URL', 'http://127.0.0.1:8080'),
    # every run is written here; see http://127.0.0.1:8080/cronjobs/
    store=os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
)

#: what the jobs below pretend to clean up and import
expired_sessions: list[str] = []


# the model's keyword form: every minute, on the minute
@app.cronjob(minute='*', jitter=False)
def clean_up_sessions(request: Request) -> str:
    log.info('clean_up_sessions: removed %d expired sessions',
             len(expired_sessions))
    expired_sessions.clear()
    return 'sessions cleaned'


# the keyword form in a time zone: 08:30 in Zurich, summer and winter
@app.cronjob(hour=8, minute=30, timezone='Europe/Zurich')
def morning_report(request: Request) -> None:
    log.info('morning_report: mailing the daily report')


# a cron expression with seconds: every 5 seconds, on weekdays and weekends
@app.cronjob('*/5 * * * * *', jitter=False)
def import_feed(request: Request) -> None:
    expired_sessions.append(f'session-{len(expired_sessions)}')
    # the request's path is the job's signed URL: never log request.url
    log.info('import_feed: imported the feed (%s call)',
             request.headers.get('X-Onecron-Trigger', 'external'))


# a fixed interval
@app.cronjob(every=timedelta(seconds=3), jitter=False)
def heartbeat(request: Request) -> None:
    log.info('heartbeat: still alive')


# manual only: run it from the status page ("Run now") or its URL; when it
# succeeds, the cleanup follows at once
@app.cronjob(then=['example_app.app.clean_up_sessions'], notify='never')
def rebuild_search_index(request: Request) -> str:
    log.info('rebuild_search_index: rebuilt')
    return 'index rebuilt'
