"""The operator's status page: what runs when, what ran, and the switches.

Served under the prefix by :class:`StatusPage` (see :meth:`handles`):

* ``GET {prefix}/`` — every application id's scheduler, hold state and
  jobs, with their controls;
* ``GET {prefix}/status.json`` — the same as JSON;
* ``GET {prefix}/jobs/{name}?application_id=...`` — a job's last runs,
  paged with ``before_id``;
* ``POST {prefix}/control/{action}`` — ``run-now``, ``enable``,
  ``disable``, ``override``, ``reset``, ``hold``, ``release``: form posts
  that answer 303 back to the page.

Every request passes :class:`~onecron.web.access.Access` first (403, or 401 for
basic auth, 429 after too many failed logins); a POST without the right
CSRF token gets 403. The pages are never cached and cannot be framed.

Whatever a request holds is checked before use: a path that is not UTF-8
is a 404, a query string that is not UTF-8 or a parameter out of range a
400. Whatever the page shows is made encodable: a lone surrogate (from
undecodable bytes) in a job name, an application id or a stored text
shows as its escape, ``\\udcff``, in the HTML and in ``status.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from urllib.parse import urlencode

from webob import Request, Response
from webob.dec import wsgify
from webob.exc import (
    HTTPBadRequest,
    HTTPConflict,
    HTTPForbidden,
    HTTPMethodNotAllowed,
    HTTPMovedPermanently,
    HTTPNotFound,
    HTTPSeeOther,
    HTTPServiceUnavailable,
    HTTPTooManyRequests,
    HTTPUnauthorized,
    WSGIHTTPException,
)

from onecron.errors import InvalidSchedule, OnecronError
from onecron.operations import HasOperations, Operations, operations_of
from onecron.stores.base import StoreError
from onecron.text import encodable
from onecron.web.access import Access
from onecron.web.status import render as html
from onecron.web.status.model import as_json, collect

log = logging.getLogger(__name__)

__all__ = ['StatusPage', 'access_of']

#: runs on one page of a job's history
PAGE_SIZE = 50
#: the largest run id (a signed 64-bit integer, as SQL stores it)
MAX_RUN_ID = 2 ** 63 - 1
#: characters of a bad value quoted back in an error message
_QUOTED = 60

_ERRORS: Mapping[int, type[WSGIHTTPException]] = {
    400: HTTPBadRequest, 401: HTTPUnauthorized, 403: HTTPForbidden,
    404: HTTPNotFound, 405: HTTPMethodNotAllowed, 409: HTTPConflict,
    429: HTTPTooManyRequests, 503: HTTPServiceUnavailable}

_JOB_ACTIONS = ('run-now', 'enable', 'disable', 'override', 'reset')
_APP_ACTIONS = ('hold', 'release')
#: the actions that change what the store keeps
_STORED_ACTIONS = ('enable', 'disable', 'override', 'reset', 'hold',
                   'release')
#: what the page says after an action; filled with the job and the id
_NOTICES = {
    'run-now': 'Run of {job} requested: it starts within seconds.',
    'enable': '{job} is enabled.',
    'disable': '{job} is disabled: it runs only when asked to.',
    'override': 'The schedule of {job} is changed; schedulers pick it up '
                'within seconds.',
    'reset': 'The schedule of {job} is back to the one in the code.',
    'hold': 'The jobs of {app} are held.',
    'release': 'The jobs of {app} are released.',
}

_HEADERS = {
    'Cache-Control': 'no-store',
    'Content-Security-Policy': (
        f"default-src 'none'; style-src {html.CSS_HASH}; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"),
    'X-Frame-Options': 'DENY',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'same-origin',
}


def access_of(holder: Operations | HasOperations) -> Access:
    """The :class:`Access` the status page settings of ``holder`` (an
    :class:`~onecron.operations.Operations` or a
    :class:`~onecron.CronApp`) describe."""
    app = operations_of(holder)
    status = app.status
    return Access(status.access, user=status.user,
                  password_hash=status.password_hash,
                  trusted_proxies=status.trusted_proxies,
                  secret=app.secrets[0], failures=app.failures)


class _Failure(Exception):
    """Ends a request with an error page; carries the status and why."""

    def __init__(self, status: int, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = dict(headers or {})


class StatusPage:
    """The status page and its controls, for the jobs of ``app``.

    :param app: the :class:`~onecron.operations.Operations` shown and
        controlled (or the :class:`~onecron.CronApp` that holds them)
    :param access: who may use the page; by default the one the options
        of ``app`` describe (:func:`access_of`)
    """

    def __init__(self, app: Operations | HasOperations, *,
                 access: Access | None = None) -> None:
        self.app = operations_of(app)
        self.access = access if access is not None else access_of(app)

    @staticmethod
    def handles(path: str) -> bool:
        """Whether the path after the prefix (``'/'``, ``'/jobs/x'``) is
        the page's; the prefix itself (``''``) redirects to ``'/'``."""
        return path in ('', '/', '/status.json') or path.startswith(
            ('/jobs/', '/control/'))

    @wsgify
    def __call__(self, request: Request) -> Response:
        try:
            response = self._respond(request)
        except _Failure as failure:
            response = self._error(request, failure.status, failure.message)
            response.headers.update(failure.headers.items())
        except StoreError as exc:
            log.exception('status page: the store failed')
            response = self._error(request, 503, f'The run store failed: '
                                   f'{exc}')
        response.headers.update(_HEADERS.items())
        return response

    def _respond(self, request: Request) -> Response:
        denied = self.access.denied(request)
        if denied is not None:
            raise _Failure(denied.status, denied.reason, None
                           if denied.retry_after is None
                           else {'Retry-After': str(denied.retry_after)})
        path = _utf8(request.environ.get('PATH_INFO', ''))
        script_name = _utf8(request.environ.get('SCRIPT_NAME', ''))
        if path is None or script_name is None:
            raise _Failure(404, 'There is no such page (the path is not '
                           'UTF-8).')
        path = path[len(self.app.prefix):]
        base = script_name + self.app.prefix
        if path == '':
            return HTTPMovedPermanently(location=f'{base}/')
        if path.startswith('/control/'):
            self._allow(request, 'POST')
            return self._control(request, path[len('/control/'):], base)
        self._allow(request, 'GET', 'HEAD')
        if path == '/':
            return self._overview(request, base)
        if path == '/status.json':
            return self._json()
        if path.startswith('/jobs/'):
            return self._history(request, path[len('/jobs/'):], base)
        raise _Failure(404, 'There is no such page.')

    @staticmethod
    def _allow(request: Request, *methods: str) -> None:
        if request.method not in methods:
            raise _Failure(405, f'Use {" or ".join(methods)} here.',
                           {'Allow': ', '.join(methods)})

    # --- pages ------------------------------------------------------

    def _overview(self, request: Request, base: str) -> Response:
        applications = [collect(self.app, application_id)
                        for application_id in self.app.application_ids()]
        notice = self._notice(request)
        response = Response(content_type='text/html', charset='utf-8')
        csrf = self.access.csrf_token(request, response, f'{base}/')
        response.text = html.overview(
            applications, base=base, csrf=csrf, now=self.app.clock(),
            notice=notice)
        return response

    def _json(self) -> Response:
        applications = [as_json(collect(self.app, application_id))
                        for application_id in self.app.application_ids()]
        return Response(json.dumps({'applications': applications}, indent=2),
                        content_type='application/json', charset='utf-8')

    def _history(self, request: Request, name: str, base: str) -> Response:
        if name not in self.app.jobs:
            raise _Failure(404, f'There is no job named {_quoted(name)}.')
        query = _query(request)
        application_id = self._application_id(query.get('application_id'))
        before = _run_id(query.get('before_id'))
        notice = self._notice(request)
        runs = older = None
        store = self.app.store
        if store is not None:
            runs = store.runs(application_id, name, limit=PAGE_SIZE + 1,
                              before_id=before)
            if len(runs) > PAGE_SIZE:
                runs = runs[:PAGE_SIZE]
                older = runs[-1].id
        response = Response(content_type='text/html', charset='utf-8')
        csrf = self.access.csrf_token(request, response, f'{base}/')
        response.text = html.history(
            name, application_id, runs, base=base, csrf=csrf,
            now=self.app.clock(), older=older, newest=before is None,
            notice=notice, zone=self._zone_of(name, application_id))
        return response

    def _zone_of(self, name: str, application_id: str) -> str | None:
        """The zone of the job's schedule in force (the code's if the
        stored override does not parse), None for a manual-only job."""
        try:
            schedule = self.app.schedule_of(name, application_id)
        except ValueError:
            schedule = self.app.jobs[name].schedule
        return None if schedule is None else schedule.timezone

    def _notice(self, request: Request) -> str | None:
        """The words for ``?done=action``, naming only known jobs."""
        query = _query(request)
        template = _NOTICES.get(query.get('done', ''))
        job = query.get('job', '')
        application_id = query.get('application_id', '')
        if template is None or (
                job not in self.app.jobs if '{job}' in template
                else application_id not in self.app.application_ids()):
            return None
        return template.format(job=job, app=application_id)

    def _application_id(self, value: str | None) -> str:
        known = self.app.application_ids()
        if not value:
            if not known:
                raise _Failure(404, 'No application id has been seen yet.')
            return known[0]
        if value not in known:
            raise _Failure(404, f'There is no application id '
                           f'{_quoted(value)}.')
        return value

    # --- controls ---------------------------------------------------

    def _control(self, request: Request, action: str, base: str) -> Response:
        if action not in _JOB_ACTIONS + _APP_ACTIONS:
            raise _Failure(404, f'There is no control {_quoted(action)}.')
        if not self.access.csrf_ok(request):
            raise _Failure(403, 'The form is out of date or came from '
                           'another site (missing or wrong CSRF token): '
                           'reload the page and try again.')
        form = {name: value for name, value in request.POST.items()
                if isinstance(value, str)}  # no file uploads here
        application_id = self._application_id(
            form.get('application_id') or None)
        name = ''
        if action in _JOB_ACTIONS:
            name = form.get('job', '')
            if name not in self.app.jobs:
                raise _Failure(404, f'There is no job named '
                               f'{_quoted(name)}.')
        if action in _STORED_ACTIONS and self.app.store is None:
            raise _Failure(409, 'Switches are kept in the run store, and '
                           'none is configured: pass CronApp(store=...).')
        try:
            self._act(action, name, application_id, form)
        except InvalidSchedule as exc:
            raise _Failure(400, str(exc)) from None
        except StoreError:
            raise  # a 503, not a 409
        except OnecronError as exc:
            raise _Failure(409, str(exc)) from None
        log.info('status page: %s %s (%s) from %s', action, name or '-',
                 application_id, self.access.client_address(request)
                 or request.remote_addr)
        query = urlencode({'done': action, 'job': name,
                           'application_id': application_id})
        if form.get('back') == 'history' and name:
            url = html.history_url(base, name, application_id)
            return HTTPSeeOther(location=f'{url}&{query}')
        return HTTPSeeOther(location=f'{base}/?{query}')

    def _act(self, action: str, name: str, application_id: str,
             form: Mapping[str, str]) -> None:
        app = self.app
        if action == 'run-now':
            app.run_now(name, application_id)  # a manual run, as the CLI's
        elif action in ('enable', 'disable'):
            app.set_enabled(name, action == 'enable', application_id)
        elif action == 'override':
            expr = form.get('schedule', '').strip()
            if not expr:
                raise InvalidSchedule('give a schedule, e.g. "*/5 * * * *", '
                                      'or reset to the one in the code')
            zone = form.get('timezone', '').strip() or None
            app.override_schedule(name, expr, application_id, timezone=zone)
        elif action == 'reset':
            app.override_schedule(name, None, application_id)
        elif action == 'hold':
            app.hold(application_id)
        else:
            app.release(application_id, catch_up=form.get('catch_up') == '1')

    # --- errors -----------------------------------------------------

    def _error(self, request: Request, status: int,
               message: str) -> Response:
        error = _ERRORS[status]
        headers = {}
        if status == 401:
            headers['WWW-Authenticate'] = 'Basic realm="onecron", ' \
                                          'charset="UTF-8"'
        # browsers get a page; curl, scripts and no Accept get plain text
        offers = request.accept.acceptable_offers(['text/plain', 'text/html'])
        if offers and offers[0][0] == 'text/html':
            base = _utf8(request.environ.get('SCRIPT_NAME', '')) or ''
            return error(body=html.error(error.title, message,
                                         base=base + self.app.prefix),
                         content_type='text/html', charset='utf-8',
                         headers=headers)
        text = f'{status} {error.title}\n\n{message}\n'
        return error(body=encodable(text), content_type='text/plain',
                     charset='utf-8', headers=headers)

    def __repr__(self) -> str:
        return f'<StatusPage {self.app.prefix!r} {self.access!r}>'


def _utf8(wsgi_text: str) -> str | None:
    """A WSGI path (its bytes as latin-1) decoded as UTF-8, or None."""
    try:
        return wsgi_text.encode('latin-1').decode('utf-8')
    except UnicodeError:
        return None


def _query(request: Request) -> Mapping[str, str]:
    """The query string's parameters; 400 if it is not UTF-8."""
    try:
        query: Mapping[str, str] = request.GET
    except UnicodeError:
        raise _Failure(400, 'The query string is not UTF-8.') from None
    return query


def _run_id(value: str | None) -> int | None:
    """``before_id`` as a run id; 400 unless it is 1 to MAX_RUN_ID."""
    if value is None:
        return None
    # ASCII digits only: isdigit() takes '²', int() takes '١٢' and ' 1_0'
    if (not value.isascii() or not value.isdigit()
            or len(value) > len(str(MAX_RUN_ID))
            or not 1 <= int(value) <= MAX_RUN_ID):
        raise _Failure(400, f'before_id must be a run id (a whole number '
                       f'from 1 to {MAX_RUN_ID}), got {_quoted(value)}.')
    return int(value)


def _quoted(value: str) -> str:
    """``value``'s repr for a message, cut short if long."""
    text = repr(value)
    if len(text) > _QUOTED:
        text = f'{text[:_QUOTED]}… ({len(value)} characters)'
    return text
