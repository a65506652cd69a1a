"""Pyramid with onecron: ``python -m example_app.pyramid_app``.

``config.include('onecron.pyramid')`` reads the ``onecron.*`` settings (in
a real app, from the ini file), ``config.scan()`` finds the ``@cronjob``
functions, and a job runs as a view does: with the Pyramid request, inside
``pyramid_tm``'s transaction.
"""

from __future__ import annotations

import logging
import os
import sys
from datetime import timedelta
from typing import Any

from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response
from pyramid.router import Router

from onecron.pyramid import cronapp, cronjob

log = logging.getLogger(__name__)

#: the heartbeats whose transaction committed
beats: list[str] = []


def hello(request: Request) -> Response:
    return Response(f'{request.registry.settings["greeting"]}\n',
                    content_type='text/plain')


def committed(request: Request) -> Response:
    return Response(f'{len(beats)} heartbeats committed\n',
                    content_type='text/plain')


@cronjob(every=timedelta(seconds=2), jitter=False)
def heartbeat(request: Request) -> str:
    # the Pyramid request: registry, settings, route_url, threadlocals
    greeting: str = request.registry.settings['greeting']
    # pyramid_tm commits after the job returns, and aborts if it raises
    request.tm.get().addAfterCommitHook(
        lambda ok: beats.append(greeting) if ok else None)
    log.info('heartbeat: %s at %s', greeting, request.route_url('home'))
    return greeting


def main(global_config: Any = None, **settings: Any) -> Router:
    """The WSGI application, as ``pserve`` calls it with the ini file's
    settings (``onecron.secret = ...`` and so on)."""
    settings.setdefault('greeting', 'Hello from Pyramid')
    settings.setdefault('onecron.secret', os.environ.get(
        'ONECRON_SECRET', 'change-me-in-production'))
    settings.setdefault('onecron.application_id', 'pyramid-example')
    settings.setdefault('onecron.base_url', os.environ.get(
        'ONECRON_BASE_URL', 'http://127.0.0.1:8080'))
    settings.setdefault('onecron.store', os.environ.get(
        'ONECRON_STORE', 'example-runs.sqlite'))
    if os.environ.get('ONECRON_LOCK_DIR'):
        settings.setdefault('onecron.lock_dir',
                            os.environ['ONECRON_LOCK_DIR'])
    with Configurator(settings=settings) as config:
        config.include('pyramid_tm')
        config.include('onecron.pyramid')
        config.add_route('home', '/')
        config.add_view(hello, route_name='home')
        config.add_route('beats', '/beats')
        config.add_view(committed, route_name='beats')
        # this module (a dotted name would import it again, half made)
        config.scan(sys.modules[__name__])
    return config.make_wsgi_app()


app = main()
#: the CronApp the settings made: ``onecron list example_app.pyramid_app:cron``
cron = cronapp(app)


if __name__ == '__main__':
    # this copy runs as __main__: serve the module under its own name, so
    # that the jobs are named example_app.pyramid_app.*
    from example_app.pyramid_app import app, cron
    from example_app.serve import serve
    serve(app, cron)
