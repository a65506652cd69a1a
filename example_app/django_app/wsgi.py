"""The WSGI application: Django's, wrapped by onecron, and its jobs.

The job gets a :class:`webob.Request` in the thread that serves it, where
the ORM works as in a view.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.utils import timezone
from webob import Request

from onecron import CronApp

os.environ.setdefault('DJANGO_SETTINGS_MODULE',
                      'example_app.django_app.settings')
application = CronApp(
    get_wsgi_application(),  # sets Django up: the models import after it
    secret=os.environ.get('ONECRON_SECRET', 'change-me-in-production'),
    application_id='django-example',
    base_url=os.environ.get('ONECRON_BASE_URL', 'http://127.0.0.1:8080'),
    store=os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
    lock_dir=os.environ.get('ONECRON_LOCK_DIR'),
)

from .models import Visit  # noqa: E402

log = logging.getLogger(__name__)
T = TypeVar('T')


def in_request_cycle(job: Callable[[Request], T]) -> Callable[[Request], T]:
    """Run ``job`` between Django's request signals, as a view runs.

    They close database connections that are broken or past
    ``CONN_MAX_AGE``, so a job never inherits a dead one.
    """
    @functools.wraps(job)
    def run(request: Request) -> T:
        request_started.send(sender=__name__, environ=request.environ)
        try:
            return job(request)
        finally:
            request_finished.send(sender=__name__)
    return run


@application.cronjob(every=timedelta(seconds=2), jitter=False)
@in_request_cycle
def forget_old_visits(request: Request) -> str:
    cutoff = timezone.now() - timedelta(minutes=1)
    deleted, _ = Visit.objects.filter(at__lt=cutoff).delete()
    log.info('forget_old_visits: deleted %d visits before %s', deleted,
             f'{cutoff:%H:%M:%S}')
    return f'deleted {deleted} visits'
