"""Flask with onecron: ``python -m example_app.flask_app``.

Or with Flask's reloader: ``flask --app example_app.flask_app run --debug``
(the scheduler starts in the serving process). ``flask --app
example_app.flask_app onecron list`` lists the jobs (``run``, ``history``,
``status``, ``export`` ...: see ``flask onecron --help``).
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta

from flask import Flask, current_app, g, request

from onecron.flask import Cron

# as Flask's docs advise: configure logging before the app is made
logging.basicConfig(
    level=logging.INFO,
    format='%(asctime)s %(levelname)-7s %(name)s: %(message)s')

# the extension, made once; init_app(app) serves an app with its jobs (in
# an app factory too)
cron = Cron()


@cron.cronjob(every=timedelta(seconds=2), jitter=False)
def heartbeat() -> str:
    # a job runs in a Flask request: current_app, g, request and the
    # extensions (Flask-SQLAlchemy's session) work as in a view
    greeting: str = current_app.config['GREETING']
    current_app.logger.info('heartbeat: %s (%s from %s)', greeting,
                            request.method, g.visitor)
    return greeting


app = Flask(__name__)
app.config.update(
    GREETING='Hello from Flask',
    # onecron's settings: ONECRON_ and a CronApp keyword
    ONECRON_SECRET=os.environ.get('ONECRON_SECRET',
                                  'change-me-in-production'),
    ONECRON_APPLICATION_ID='flask-example',
    ONECRON_BASE_URL=os.environ.get('ONECRON_BASE_URL',
                                    'http://127.0.0.1:8080'),
    ONECRON_STORE=os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
    ONECRON_LOCK_DIR=os.environ.get('ONECRON_LOCK_DIR'),
)


@app.before_request
def visitor() -> None:
    # runs before the jobs too, as before a view
    g.visitor = request.headers.get('User-Agent', 'someone')


@app.route('/')
def index() -> str:
    return f'{current_app.config["GREETING"]}\n'


cron.init_app(app)


if __name__ == '__main__':
    # this copy runs as __main__: serve the module under its own name, so
    # that the jobs are named example_app.flask_app.*
    from example_app.flask_app import app, cron
    from example_app.serve import serve
    serve(app, cron.cronapp(app))
