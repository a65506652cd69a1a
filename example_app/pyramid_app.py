"""Pyramid with onecron: ``python -m example_app.pyramid_app``."""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from pyramid.config import Configurator
from pyramid.request import Request as PyramidRequest
from pyramid.response import Response
from webob import Request

from onecron import CronApp

log = logging.getLogger(__name__)


def hello(request: PyramidRequest) -> Response:
    return Response(f'{request.registry.settings["greeting"]}\n',
                    content_type='text/plain')


with Configurator(settings={'greeting': 'Hello from Pyramid'}) as config:
    config.add_route('home', '/')
    config.add_view(hello, route_name='home')
    pyramid_app = config.make_wsgi_app()

app = CronApp(
    pyramid_app,
    secret=os.environ.get('ONECRON_SECRET', 'change-me-in-production'),
    application_id='pyramid-example',
    base_url=os.environ.get('ONECRON_BASE_URL', 'http://127.0.0.1:8080'),
    store=os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
    lock_dir=os.environ.get('ONECRON_LOCK_DIR'),
)


@app.cronjob(every=timedelta(seconds=2), jitter=False)
def heartbeat(request: Request) -> str:
    # a Pyramid request for the job's environ, with the registry and the
    # threadlocals a view has (request.route_url, get_current_registry)
    with pyramid_app.request_context(request.environ) as pyramid_request:
        greeting: str = pyramid_request.registry.settings['greeting']
        home = pyramid_request.route_url('home')
    log.info('heartbeat: %s at %s', greeting, home)
    return greeting


if __name__ == '__main__':
    # this copy runs as __main__: serve the module under its own name, so
    # that the jobs are named example_app.pyramid_app.*
    from example_app.pyramid_app import app
    from example_app.serve import serve
    serve(app, app)
