"""The project's CronApp, answering the job URLs inside a Django view."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.handlers.wsgi import WSGIHandler
from django.http import HttpRequest, HttpResponse

from onecron import CronApp
from onecron.django import REQUEST_KEY

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)


class DjangoCronApp(CronApp):
    """A :class:`~onecron.CronApp` whose requests all go through Django.

    The view of ``onecron.django.urls`` hands its request to
    :meth:`respond`. Served as a WSGI application itself (as the
    ``run`` command does), it passes the request to Django's handler,
    which routes the job URL to that view: a job always runs inside
    Django's request handling.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(None, **options)
        self._django: WSGIHandler | None = None

    def notice(self, environ: WSGIEnvironment) -> None:
        """Start the scheduler for a request if it is the one to (its
        host is allowed, or a base URL is configured): what every request
        to a CronApp does."""
        # internal: CronApp.__call__'s own test, and its _notice
        if self._watching and self._static_id not in self._schedulers:
            try:
                self._notice(environ)
            except Exception:  # the site's request goes on regardless
                log.exception('the scheduler did not start')

    def respond(self, request: HttpRequest) -> HttpResponse:
        """Answer a request of the view under the prefix: a job URL runs
        its job with ``request``, the status page shows."""
        environ = getattr(request, 'environ', None)
        if not isinstance(environ, dict):
            log.error('onecron.django answers WSGI requests only: serve the '
                      'project with a WSGI server (this request came '
                      'through ASGI)')
            return _error('onecron.django needs a WSGI server')
        path = environ.get('PATH_INFO', '')
        if not path.startswith(self.prefix + '/'):
            # never the path: it may hold a token
            log.error("onecron.django.urls is included at another path "
                      "than ONECRON['PREFIX'] %r: include it with "
                      "path(%r, include('onecron.django.urls')) or set "
                      "ONECRON['PREFIX'] to where it is", self.prefix,
                      self.prefix.lstrip('/') + '/')
            return _error("onecron.django.urls is not included at "
                          "ONECRON['PREFIX']")
        environ[REQUEST_KEY] = request
        try:
            status, headers, body = _call(
                lambda start: CronApp.__call__(self, environ, start))
        finally:
            del environ[REQUEST_KEY]
        code, _, reason = status.partition(' ')
        response = HttpResponse(body, status=int(code), reason=reason or None)
        for name, value in headers:
            if name.lower() == 'set-cookie':
                response.cookies.load(value)
            else:
                response.headers[name] = value
        return _unlogged(response)

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        if self._django is None:
            self._django = WSGIHandler()
        result: Iterable[bytes] = self._django(environ, start_response)
        return result


def _error(why: str) -> HttpResponse:
    """A 500 that says what is misconfigured (the log says more)."""
    return _unlogged(HttpResponse(
        f'Internal Server Error: {why} (see the log)\n', status=500,
        content_type='text/plain; charset=utf-8',
        headers={'Cache-Control': 'no-store'}))


def _unlogged(response: HttpResponse) -> HttpResponse:
    """``response``, marked as logged already: Django's own line for a
    4xx or 5xx answer names the path, which may hold a token (onecron
    logged and reported what went wrong, without it)."""
    response._has_been_logged = True
    return response


def _call(app: Any) -> tuple[str, list[tuple[str, str]], bytes]:
    """The status, headers and body of the WSGI call ``app(start)``."""
    started: list[tuple[str, list[tuple[str, str]]]] = []
    chunks: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]],
                       exc_info: OptExcInfo | None = None) -> Any:
        if exc_info is not None and started and exc_info[1] is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [(status, headers)]
        return chunks.append

    iterable = app(start_response)
    try:
        chunks.extend(iterable)
    finally:
        close = getattr(iterable, 'close', None)
        if close is not None:
            close()
    status, headers = started[0]
    return status, headers, b''.join(chunks)
