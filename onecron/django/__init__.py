"""Django support: ``'onecron.django'`` in ``INSTALLED_APPS``.

Configure the :class:`~onecron.CronApp` in the settings, each of its
keywords upper-cased, include the job URLs where ``ONECRON['PREFIX']``
(default ``'/cronjobs'``) says, and write the jobs in any installed app's
``cronjobs.py``, which is imported when Django starts::

    # settings.py
    INSTALLED_APPS = [..., 'onecron.django']
    ONECRON = {'SECRET': os.environ['ONECRON_SECRET'],
               'BASE_URL': 'https://example.org',
               'STORE': BASE_DIR / 'onecron.sqlite'}

    # urls.py
    urlpatterns = [..., path('cronjobs/', include('onecron.django.urls'))]

    # myapp/cronjobs.py
    from onecron.django import cronjob

    @cronjob(hour=3)
    def purge(request):                  # a django.http.HttpRequest
        Session.objects.filter(expire_date__lt=timezone.now()).delete()

A job runs as a view does: its URL is answered by a Django view, through
the middleware and the request signals (database connections are closed
after it as after a view), and the job gets that view's
:class:`~django.http.HttpRequest`. ``python manage.py onecron ...`` runs the
``onecron`` commands (``list``, ``run JOB``, ``history``, ``status``,
``export``, ...) for the project's jobs.

This module imports without configured settings: ``cronjobs.py`` modules
import :func:`cronjob` while Django starts.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from webob import Request

from onecron import CronApp, OnecronError

__all__ = ['cronjob', 'get_cronapp']

F = TypeVar('F', bound=Callable[..., Any])

#: the environ key under which the view hands its HttpRequest to the job
REQUEST_KEY = 'onecron.django.request'

#: what :meth:`onecron.CronApp.cronjob` takes besides the schedule string
_JOB_KEYWORDS = tuple(
    name for name, parameter in inspect.signature(
        CronApp.cronjob).parameters.items()
    if parameter.kind is inspect.Parameter.KEYWORD_ONLY)

_mutex = threading.Lock()
# every job registered with @cronjob, in order: (expr, options, runner)
_jobs: list[tuple[str | None, dict[str, Any], Callable[[Request], Any]]] = []
# the project's CronApp, once the app registry built it
_cronapp: CronApp | None = None


def cronjob(expr: str | None = None, **options: Any) -> Callable[[F], F]:
    """Register the decorated function as a job of the project's CronApp.

    Takes the arguments of :meth:`onecron.CronApp.cronjob`; the function
    gets the job URL's :class:`~django.http.HttpRequest`. A job registered
    before the CronApp is built (Django's apps not ready yet) is added to
    it when it is; its schedule is checked then. Returns the function.
    """
    if callable(expr):
        raise TypeError('use @cronjob(...) with a schedule, not bare '
                        '@cronjob')
    for keyword in options:
        if keyword not in _JOB_KEYWORDS:
            close = difflib.get_close_matches(keyword, _JOB_KEYWORDS, 1)
            raise TypeError(f'cronjob() got an unexpected keyword '
                            f'{keyword!r}'
                            + (f'; did you mean {close[0]!r}?' if close
                               else ''))

    def register(func: F) -> F:
        runner = _runner(func)
        with _mutex:
            if _cronapp is not None:
                _cronapp.cronjob(expr, **options)(runner)
            _jobs.append((expr, options, runner))
        return func

    return register


def get_cronapp() -> CronApp:
    """The project's :class:`~onecron.CronApp`, built from
    ``settings.ONECRON`` when Django's apps are ready: for ``url_for``,
    ``run_soon``, ``start`` and the rest."""
    if _cronapp is None:
        raise ImproperlyConfigured(
            "onecron is not set up: add 'onecron.django' to INSTALLED_APPS "
            '(its CronApp is built when Django has loaded the apps)')
    return _cronapp


def _install(cron: CronApp) -> None:
    """Make ``cron`` the project's CronApp, with the jobs registered so
    far (the apps' ``cronjobs.py`` add theirs after)."""
    global _cronapp
    with _mutex:
        for expr, options, runner in _jobs:
            cron.cronjob(expr, **options)(runner)
        _cronapp = cron


def _runner(func: Callable[[Any], Any]) -> Callable[[Request], Any]:
    """What onecron calls for ``func``: it hands over the HttpRequest of
    the view that serves the job URL (named as ``func`` is)."""

    @functools.wraps(func)
    def run(request: Request) -> Any:
        http_request = request.environ.get(REQUEST_KEY)
        if http_request is None:
            raise OnecronError(
                f'job {func.__qualname__!r} was called outside Django: '
                f'serve its URL through onecron.django.urls')
        return func(http_request)

    return run
