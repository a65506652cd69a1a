"""The test site's jobs, imported by onecron.django's autodiscovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import connections
from django.http import HttpRequest

from onecron.django import cronjob

#: what ``record`` saw, one dict per run
CALLS: list[dict[str, Any]] = []
#: the requests ``tick`` got from the scheduler
TICKS: list[HttpRequest] = []
#: the request signals and the job, in the order they happened
EVENTS: list[str] = []


def _started(sender: object, **kwargs: object) -> None:
    EVENTS.append('request_started')


def _finished(sender: object, **kwargs: object) -> None:
    EVENTS.append('request_finished')


request_started.connect(_started, weak=False)
request_finished.connect(_finished, weak=False)


@cronjob()
def record(request: HttpRequest) -> str:
    EVENTS.append('job')
    database = connections['default']
    with database.cursor() as cursor:
        cursor.execute('SELECT 1')
    CALLS.append({'request': request,
                  'marked': getattr(request, 'marked_by_middleware', False),
                  'database': database,
                  'connected': database.connection is not None})
    return 'recorded'


@cronjob()
def fail(request: HttpRequest) -> None:
    raise RuntimeError('the job broke')


@cronjob(every=timedelta(seconds=2), jitter=False)
def tick(request: HttpRequest) -> str:
    TICKS.append(request)
    return 'ticked'


@cronjob(hour=3)
def nightly(request: HttpRequest) -> str:
    return 'night'
