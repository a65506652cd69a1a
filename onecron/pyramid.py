"""Pyramid support: ``config.include('onecron.pyramid')``.

Configure onecron with ``onecron.*`` settings (every keyword of
:class:`~onecron.CronApp` as ``onecron.<keyword>``: ``onecron.secret``,
``onecron.base_url``, ...), register jobs with ``config.add_cronjob(func,
**keywords)`` or the :class:`cronjob` decorator that ``config.scan()``
finds, and serve the Pyramid application as usual::

    @cronjob(hour=3)
    def purge(request):           # a pyramid.request.Request
        purge_expired(request.dbsession, request.registry.settings)

    def main(global_config, **settings):
        with Configurator(settings=settings) as config:
            config.include('pyramid_tm')
            config.include('onecron.pyramid')
            config.scan()
        return config.make_wsgi_app()

A job runs as a view does: a route under the prefix hands the job URL to the
:class:`~onecron.CronApp` (the same token check, claims, history and
reporting as anywhere), inside Pyramid's request handling. The job gets the
real Pyramid request (``request.registry``, the threadlocals), and the
tweens run around it: ``pyramid_tm`` commits after a job that returns and
aborts after one that raises (recorded and reported as failed, once, and
answered with onecron's own 500: the request is marked as handled for the
exception, ``request.exception``, as an exception view's would be).

The ``CronApp`` is made when the configuration is committed, one per
registry: :func:`cronapp` gives it (``cronapp(request).url_for(name)``).
Its scheduler starts as any onecron app's: on its own with a configured
``onecron.base_url`` in a serving process, else with the first request
whose host is in ``onecron.allowed_hosts``.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import venusian
from pyramid.config import Configurator
from pyramid.exceptions import ConfigurationError
from pyramid.interfaces import PHASE2_CONFIG
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response
from pyramid.router import Router
from pyramid.security import NO_PERMISSION_REQUIRED
from pyramid.settings import aslist, falsey, truthy
from pyramid.tweens import INGRESS
from webob import Request

from onecron import CronApp, OnecronError

__all__ = ['add_cronjob', 'cronapp', 'cronjob', 'includeme']

#: where the registry keeps its CronApp
_KEY = 'onecron.cronapp'
#: where the registry keeps a router for job calls made outside Pyramid
_ROUTER = 'onecron.router'
#: the WSGI environ key of the job call on its way through Pyramid
_CALL = 'onecron.pyramid.call'
#: the names of the job route and of the one for the prefix itself
ROUTE = 'onecron'
PREFIX_ROUTE = 'onecron.prefix'
#: the settings' prefix
_SETTINGS = 'onecron.'

#: the keywords of CronApp's settings (all but the wrapped application)
_SIGNATURE = inspect.signature(CronApp.__init__)
_HINTS = typing.get_type_hints(CronApp.__init__,
                               localns={'WSGIApplication': Any})
_KEYWORDS = tuple(name for name in _SIGNATURE.parameters
                  if name not in ('self', 'wrapped'))
#: the keywords of a job, as CronApp.cronjob takes them
_JOB_SIGNATURE = inspect.signature(CronApp.cronjob)


# -- settings ---------------------------------------------------------------

def _members(hint: Any) -> tuple[Any, ...]:
    """The types a keyword's hint allows: a union's members, or itself."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _convert(key: str, value: str, hint: Any, config: Configurator) -> Any:
    """The ini string ``value`` of the setting ``key`` as the keyword
    typed ``hint`` takes it; :exc:`ConfigurationError` naming ``key``
    when it is none of what the keyword takes."""
    members = _members(hint)
    words = value.strip()
    sequences = [member for member in members
                 if typing.get_origin(member) is Sequence]
    if type(None) in members and words.lower() in ('', 'none'):
        return None
    if bool in members:
        if words.lower() in truthy:
            return True
        if words.lower() in falsey:
            return False
        if str in members:
            return words  # autostart = auto: the CronApp checks it
        raise ConfigurationError(f'{key} must be true or false, '
                                 f'got {value!r:.80}')
    for number in (int, float):
        if number in members:
            try:
                return number(words)
            except ValueError:
                kind = 'an integer' if number is int else 'a number'
                raise ConfigurationError(
                    f'{key} must be {kind}, got {value!r:.80}') from None
    if sequences and str in members:
        # the secret: one per line (several rotate), never split at spaces
        lines = aslist(value, flatten=False)
        return lines[0] if len(lines) == 1 else lines or ''
    if sequences:
        return aslist(value)
    if str in members:
        return value
    # a clock, caller, reporter or SMTP settings object: its dotted name
    try:
        return config.maybe_dotted(words)
    except ImportError as exc:
        raise ConfigurationError(f'{key}: cannot import {words!r:.80}: '
                                 f'{exc}') from None


def _options_from(settings: Mapping[str, Any],
                 config: Configurator) -> dict[str, Any]:
    """The :class:`~onecron.CronApp` keywords the ``onecron.*`` settings
    give, ini strings converted to the keyword's type.

    Raises :exc:`ConfigurationError` for an unknown ``onecron.*`` key
    (naming the nearest known one), a value of the wrong type, or a
    missing ``onecron.secret``.
    """
    options: dict[str, Any] = {}
    for key, value in settings.items():
        if not key.startswith(_SETTINGS):
            continue
        keyword = key[len(_SETTINGS):]
        if keyword not in _KEYWORDS:
            known = [f'{_SETTINGS}{name}' for name in _KEYWORDS]
            near = difflib.get_close_matches(key, known, n=1)
            hint = (f'; did you mean {near[0]}?' if near else
                    f'; known: {", ".join(known)}')
            raise ConfigurationError(f'unknown setting {key}{hint}')
        options[keyword] = (_convert(key, value, _HINTS[keyword], config)
                            if isinstance(value, str) else value)
    if not options.get('secret'):
        raise ConfigurationError(
            f'{_SETTINGS}secret is not set: onecron signs the job URLs with '
            f'it (make one with python -c "import secrets; '
            f'print(secrets.token_urlsafe(32))")')
    return options


def _route_prefix(options: Mapping[str, Any]) -> str:
    """The prefix as the routes take it (the CronApp checks it again)."""
    prefix = options.get('prefix', _SIGNATURE.parameters['prefix'].default)
    if (not isinstance(prefix, str) or not prefix.startswith('/')
            or not prefix.rstrip('/') or set(prefix) & set('{}*')):
        raise ConfigurationError(
            f'{_SETTINGS}prefix must start with "/", not be "/" and hold no '
            f'{{, }} or *, got {prefix!r:.80}')
    return prefix.rstrip('/')


# -- the include --------------------------------------------------------------

def includeme(config: Configurator) -> None:
    """Read the ``onecron.*`` settings, add the ``add_cronjob``
    directive, the job route and view under the prefix, and the tween
    that starts the scheduler; the :class:`~onecron.CronApp` is made at
    commit, before the jobs are registered."""
    options = _options_from(config.get_settings(), config)
    prefix = _route_prefix(options)
    if config.route_prefix:
        # the routes would move, the CronApp's prefix would not
        raise ConfigurationError(
            f'onecron.pyramid included with route_prefix '
            f'{config.route_prefix!r:.80}: set {_SETTINGS}prefix instead')
    registry = config.registry
    config.add_directive('add_cronjob', add_cronjob)

    def make() -> None:
        registry[_KEY] = CronApp(**options)

    config.action(_KEY, make, order=PHASE2_CONFIG)
    # the job's caller is the scheduler or an external one: never asked
    # for a CSRF token or a permission (a job URL is its own credential)
    view_options: dict[str, Any] = {
        'permission': NO_PERMISSION_REQUIRED, 'require_csrf': False}
    config.add_route(PREFIX_ROUTE, prefix)
    config.add_route(ROUTE, f'{prefix}/*subpath')
    config.add_view(_view, route_name=PREFIX_ROUTE, **view_options)
    config.add_view(_view, route_name=ROUTE, **view_options)
    config.add_tween('onecron.pyramid.tween_factory', under=INGRESS)


def cronapp(holder: Any) -> CronApp:
    """The :class:`~onecron.CronApp` of a registry, or of the registry
    of a request or router (``cronapp(request).url_for(name)``).

    Raises :class:`~onecron.OnecronError` before the configuration
    that includes ``onecron.pyramid`` is committed.
    """
    registry = getattr(holder, 'registry', holder)
    try:
        app = registry[_KEY]
    except (KeyError, TypeError):
        raise OnecronError(
            "no CronApp in this registry: config.include('onecron.pyramid')"
            ' and commit the configuration (config.make_wsgi_app() does) '
            'first') from None
    if not isinstance(app, CronApp):
        raise OnecronError(f'the registry holds {type(app).__name__} '
                           f'under {_KEY!r}, not a CronApp')
    return app


def add_cronjob(config: Configurator, func: Any, expr: str | None = None,
                **keywords: Any) -> None:
    """The ``config.add_cronjob(func, **keywords)`` directive: register
    ``func`` (or its dotted name) as a job; it gets the Pyramid request.

    ``keywords`` are those of :meth:`onecron.CronApp.cronjob`; an unknown
    one raises :exc:`TypeError` here, a bad schedule or option fails the
    commit. A job name (by default the function's module and qualified
    name) registered twice is a configuration conflict.
    """
    _JOB_SIGNATURE.bind(None, expr, **keywords)  # a wrong keyword: now
    job = config.maybe_dotted(func)
    if not callable(job):
        raise ConfigurationError(f'add_cronjob: {func!r:.80} is not '
                                 f'callable')
    name = keywords.pop('name', None) or (
        f'{job.__module__}.{job.__qualname__}')
    registry = config.registry

    def register() -> None:
        cron = cronapp(registry)
        cron.cronjob(expr, name=name, **keywords)(
            _runner(job, name, registry))

    config.action(('onecron.cronjob', name), register)


class cronjob:
    """Register the decorated function as a job when ``config.scan()``
    finds it: ``@cronjob(hour=3)``, the keywords of
    :meth:`onecron.CronApp.cronjob`. The function gets the Pyramid
    request. An unknown keyword raises :exc:`TypeError` at import."""

    venusian = venusian  # for testing, as Pyramid's own decorators

    def __init__(self, expr: str | None = None, **keywords: Any) -> None:
        _JOB_SIGNATURE.bind(None, expr, **keywords)
        self.expr = expr
        self.keywords = keywords

    def __call__(self, wrapped: Any) -> Any:
        def callback(context: Any, name: str, obj: Any) -> None:
            config = context.config.with_package(info.module)
            config.add_cronjob(obj, self.expr, **self.keywords)

        info = self.venusian.attach(wrapped, callback, category='pyramid')
        return wrapped


# -- running a job --------------------------------------------------------

@dataclass
class _Call:
    """One job call on its way through Pyramid's request handling.

    Made by the view (``func`` None: the CronApp runs the call and the
    job gets ``request``), or by a job called outside Pyramid, which
    routes it through the router with ``func`` to run in the view.
    """

    request: PyramidRequest | None = None
    func: Callable[[PyramidRequest], Any] | None = None
    done: bool = False
    result: Any = None
    #: what the job raised
    error: Exception | None = None


def _runner(func: Callable[[PyramidRequest], Any], name: str,
            registry: Any) -> Callable[[Request], Any]:
    """The function the CronApp calls for the job ``func``: it gets the
    Pyramid request of the view that handed the call to the CronApp, or
    routes a call made outside Pyramid through it."""

    def run(request: Request) -> Any:
        call = request.environ.get(_CALL)
        if not isinstance(call, _Call) or call.request is None:
            return _through_pyramid(func, name, registry, request)
        try:
            return func(call.request)
        except Exception as exc:
            call.error = exc
            raise

    return functools.update_wrapper(run, func)


def _through_pyramid(func: Callable[[PyramidRequest], Any], name: str,
                     registry: Any, request: Request) -> Any:
    """Run ``func`` for a call the CronApp got directly (``onecron run``
    on it, or the CronApp served itself): through the router, so the job
    gets a Pyramid request inside the tweens all the same."""
    router = registry.get(_ROUTER)
    if router is None:
        router = registry[_ROUTER] = Router(registry)
    environ = request.environ
    call = environ[_CALL] = _Call(func=func)
    try:
        response = request.get_response(router)
    finally:
        del environ[_CALL]
    if call.error is not None:
        raise call.error
    if not call.done:
        raise OnecronError(f'job {name!r} did not run: Pyramid answered '
                           f'{response.status} before it')
    return call.result


def _handled(request: PyramidRequest, exc: Exception) -> None:
    """Mark ``request`` as answered for the exception ``exc``, as Pyramid
    does when an exception view renders a response: ``pyramid_tm`` (and
    any tween that reads ``request.exception``) aborts. Nothing is
    raised, so no exception view, exception logger or Sentry reports the
    failure a second time: onecron reported it."""
    request.exception = exc
    request.exc_info = (type(exc), exc, exc.__traceback__)


def _view(request: PyramidRequest) -> Response:
    """The view of the prefix: the CronApp answers (the status page, a
    job URL); a job it runs gets ``request``."""
    environ = request.environ
    given = environ.get(_CALL)
    if isinstance(given, _Call) and given.func is not None:
        try:  # a call routed here by _through_pyramid: the job itself
            given.result = given.func(request)
        except Exception as exc:  # the job's: _through_pyramid raises it
            given.error = exc
            _handled(request, exc)
            return Response(status=500)
        given.done = True
        return Response()
    call = environ[_CALL] = _Call(request=request)
    response: Response = request.send(cronapp(request),
                                      catch_exc_info=True)
    if call.error is not None:
        _handled(request, call.error)
    return response


def tween_factory(handler: Callable[[PyramidRequest], Response],
                  registry: Any) -> Callable[[PyramidRequest], Response]:
    """The outermost tween: starts the request's scheduler as the
    CronApp does for each request it serves."""
    cron = cronapp(registry)

    def onecron_tween(request: PyramidRequest) -> Response:
        # internal: what CronApp.__call__ does first, for every request
        if cron._watching and cron._static_id not in cron._schedulers:
            cron._notice(request.environ)
        return handler(request)

    return onecron_tween
