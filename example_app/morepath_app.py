"""Morepath with onecron: ``python -m example_app.morepath_app``.

Jobs are registered with the ``cronjob`` directive of
:class:`onecron.morepath.CronjobApp`.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

import morepath

from onecron.morepath import CronjobApp, cron_app

log = logging.getLogger(__name__)


class App(CronjobApp):
    pass


@App.setting(section='example', name='greeting')
def greeting() -> str:
    return 'Hello from Morepath'


@App.path(path='')
class Root:
    pass


@App.view(model=Root)
def index(self: Root, request: morepath.Request[App]) -> str:
    return f'{request.app.settings.example.greeting}\n'


@App.cronjob(every=timedelta(seconds=2), jitter=False)
def heartbeat(request: morepath.Request[App]) -> str:
    # a morepath.Request bound to the app, inside its tweens, as a view
    greeting: str = request.app.settings.example.greeting
    log.info('heartbeat: %s at %s', greeting, request.link(Root()))
    return greeting


app = cron_app(
    App(),
    secret=os.environ.get('ONECRON_SECRET', 'change-me-in-production'),
    application_id='morepath-example',
    base_url=os.environ.get('ONECRON_BASE_URL', 'http://127.0.0.1:8080'),
    store=os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
    lock_dir=os.environ.get('ONECRON_LOCK_DIR'),
)

if __name__ == '__main__':
    # this copy runs as __main__: serve the module under its own name, so
    # that the jobs are named example_app.morepath_app.*
    from example_app.morepath_app import app
    from example_app.serve import serve
    serve(app, app)
