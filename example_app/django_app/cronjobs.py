"""The example's job: found by onecron.django when Django starts.

It runs as a view does, inside Django's request handling (middleware,
request signals: database connections are closed after it), and gets the
job URL's ``HttpRequest``.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone

from onecron.django import cronjob

from .models import Visit

log = logging.getLogger(__name__)


@cronjob(every=timedelta(seconds=2), jitter=False)
def forget_old_visits(request: HttpRequest) -> str:
    cutoff = timezone.now() - timedelta(minutes=1)
    deleted, _ = Visit.objects.filter(at__lt=cutoff).delete()
    log.info('forget_old_visits: deleted %d visits before %s', deleted,
             f'{cutoff:%H:%M:%S}')
    return f'deleted {deleted} visits'
