"""Flask with onecron: ``python -m example_app.flask_app``.

Or with Flask's reloader: ``flask --app example_app.flask_app run --debug``
(the scheduler starts with the first request, in the serving process).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from flask import Flask, current_app
from webob import Request

from onecron import CronApp

# as Flask's docs advise: configure logging before the app is made
logging.basicConfig(
    level=logging.INFO,
    format='%(asctime)s %(levelname)-7s %(name)s: %(message)s')
app = Flask(__name__)
app.config['GREETING'] = 'Hello from Flask'


@app.route('/')
def index() -> str:
    return f'{current_app.config["GREETING"]}\n'


cron = CronApp(
    app.wsgi_app,
    secret=os.environ.get('ONECRON_SECRET', 'change-me-in-production'),
    application_id='flask-example',
    base_url=os.environ.get('ONECRON_BASE_URL', 'http://127.0.0.1:8080'),
    store=os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
    lock_dir=os.environ.get('ONECRON_LOCK_DIR'),
)
# onecron in front of Flask, as Flask's WSGI middleware: `flask run` and
# any server serving `app` pass through it
app.wsgi_app = cron  # type: ignore[method-assign]


@cron.cronjob(every=timedelta(seconds=2), jitter=False)
def heartbeat(request: Request) -> str:
    # a job runs outside Flask's request handling: push an app context to
    # reach current_app, g, the config and extensions (Flask-SQLAlchemy)
    with app.app_context():
        greeting: str = current_app.config['GREETING']
        current_app.logger.info('heartbeat: %s', greeting)
    return greeting


if __name__ == '__main__':
    # this copy runs as __main__: serve the module under its own name, so
    # that the jobs are named example_app.flask_app.*
    from example_app.flask_app import app, cron
    from example_app.serve import serve
    serve(app, cron)
