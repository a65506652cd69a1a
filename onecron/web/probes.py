"""Kubernetes probes: ``{prefix}/livez`` and ``{prefix}/readyz``.

``livez``
    200 while this process's scheduler loop (the clockwork thread) runs
    and ticked within :data:`STUCK_AFTER` seconds by the CronApp's clock;
    503 when it is stopped (:meth:`~onecron.CronApp.stop`, or never
    started) or stuck. A CronApp with ``enabled=False`` runs no scheduler
    here and is always live. The ticks are read on the CronApp's clock: a
    wall clock stepped forward by more than :data:`STUCK_AFTER` reads as
    stuck until the next tick, at most a minute later.
``readyz``
    200 when the store answers (one read of its schema version), 503 when
    it does not; 200 without a store.

Both answer any client, without the status page's access rule (the
kubelet calls from the node's address), to GET and HEAD only, and say
one word: no job name, URL, token or store location.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

from onecron.job import Job
from onecron.running.clockwork import MAX_SLEEP, Clockwork
from onecron.running.scheduler import Scheduler
from onecron.schedule.clock import Clock
from onecron.stores.base import Store
from onecron.web.access import Access

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ['STUCK_AFTER', 'Watched', 'live', 'ready', 'livez', 'readyz']


class Watched(Protocol):
    """What the probes and ``/metrics`` read of the application (a
    :class:`~onecron.CronApp` has all of it): typed here, so that the web
    layer depends on no CronApp."""

    @property
    def enabled(self) -> bool: ...

    @property
    def store(self) -> Store | None: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def jobs(self) -> Mapping[str, Job]: ...

    @property
    def schedulers(self) -> Mapping[str, Scheduler]: ...

    @property
    def clockwork(self) -> Clockwork:
        """The scheduler loop of this process."""

    @property
    def page_access(self) -> Access:
        """Who may see the status page, and so ``/metrics``."""

    def application_ids(self) -> list[str]: ...

log = logging.getLogger(__name__)

#: seconds without a tick after which the scheduler loop counts as stuck:
#: it ticks at least every :data:`~onecron.running.clockwork.MAX_SLEEP`
#: seconds when idle, and after every step; this leaves a step two more
#: minutes (a store's or a lock's slowest wait is far shorter)
STUCK_AFTER = 3 * MAX_SLEEP

#: stores whose outage readyz has logged
_DOWN: weakref.WeakSet[Store] = weakref.WeakSet()

_HEADERS = [('Content-Type', 'text/plain; charset=utf-8'),
            ('Cache-Control', 'no-store'),
            ('X-Content-Type-Options', 'nosniff')]


def live(app: Watched) -> str | None:
    """Why ``app``'s scheduler loop is not live (``'stopped'``,
    ``'stuck'``), or None if it is."""
    if not app.enabled:
        return None
    clockwork = app.clockwork
    if not clockwork.alive:
        return 'stopped'
    ticked = clockwork.ticked
    if ticked is not None and app.clock().timestamp() - ticked > STUCK_AFTER:
        return 'stuck'
    return None


def ready(app: Watched) -> str | None:
    """Why ``app`` is not ready (``'store unavailable'``), or None.

    An outage is logged once, and its end once: the kubelet asks every
    few seconds.
    """
    store = app.store
    if store is None:
        return None
    try:
        store.version()
    except Exception as exc:  # StoreError, or a custom store's own
        if store not in _DOWN:
            _DOWN.add(store)
            log.warning('readyz: the store does not answer: %s', exc)
        return 'store unavailable'
    if store in _DOWN:
        _DOWN.discard(store)
        log.warning('readyz: the store answers again')
    return None


def livez(app: Watched, environ: WSGIEnvironment,
          start_response: StartResponse) -> Iterable[bytes]:
    """Answer ``{prefix}/livez``."""
    return _answer(environ, start_response, live(app))


def readyz(app: Watched, environ: WSGIEnvironment,
           start_response: StartResponse) -> Iterable[bytes]:
    """Answer ``{prefix}/readyz``."""
    return _answer(environ, start_response, ready(app))


def _answer(environ: WSGIEnvironment, start_response: StartResponse,
            problem: str | None) -> list[bytes]:
    method = environ.get('REQUEST_METHOD')
    if method not in ('GET', 'HEAD'):
        status, body = '405 Method Not Allowed', b'use GET or HEAD\n'
        headers = [*_HEADERS, ('Allow', 'GET, HEAD')]
    elif problem is None:
        status, body, headers = '200 OK', b'ok\n', _HEADERS
    else:
        status, body = '503 Service Unavailable', f'{problem}\n'.encode()
        headers = _HEADERS
    start_response(status, [*headers, ('Content-Length', str(len(body)))])
    return [] if method == 'HEAD' else [body]
