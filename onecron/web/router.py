"""What answers a request under the prefix: a job URL, the status page,
``/metrics`` or a probe; and how an answer that failed is turned into a 500.

Whatever the request holds, it gets an answer, never an exception: a path
that is not UTF-8 names nothing here (404), and an answer that raises is
reported (without the path, which may hold a token) and becomes a 500.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from onecron.reporting import Reporter
from onecron.web.endpoint import JobEndpoint
from onecron.web.probes import Watched
from onecron.web.status.page import StatusPage

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ['Extra', 'PrefixRouter']

#: an answer under the prefix besides the jobs and the status page, given
#: what it watches
Extra = Callable[[Watched, 'WSGIEnvironment', 'StartResponse'],
                 Iterable[bytes]]


class PrefixRouter:
    """Hands each request under ``prefix`` to the part that answers it.

    :param extra: the answers at fixed paths after the prefix (``/metrics``,
        ``/livez``, ``/readyz``), each given ``watched``
    """

    def __init__(self, prefix: str, endpoint: JobEndpoint,
                 status: StatusPage, *, watched: Watched,
                 extra: Mapping[str, Extra], reporter: Reporter) -> None:
        self.prefix = prefix
        self._endpoint = endpoint
        self._status = status
        self._watched = watched
        self._extra = dict(extra)
        self._reporter = reporter

    def __call__(self, path: str, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        try:
            path.encode('latin-1').decode('utf-8')
        except UnicodeError:
            return self._endpoint.not_found(environ, start_response)
        below = path[len(self.prefix):]
        try:
            answer = self._extra.get(below)
            if answer is not None:
                return answer(self._watched, environ, start_response)
            if self._status.handles(below):
                return self._status(environ, start_response)
            return self._endpoint(environ, start_response)
        except Exception as exc:
            # never the path in the log: it may hold a token
            self._reporter.failure('*', '*', 'answering a request under '
                                   'the prefix failed', exc)
            return _internal_error(start_response, sys.exc_info())


def _internal_error(start_response: StartResponse,
                    exc_info: OptExcInfo) -> Iterable[bytes]:
    start_response('500 Internal Server Error', [
        ('Content-Type', 'text/plain; charset=utf-8'),
        ('Cache-Control', 'no-store')], exc_info)
    return [b'Internal Server Error\n']
