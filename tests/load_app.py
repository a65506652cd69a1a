"""The application the load tests serve: a no-op job that counts its runs.

Each run appends ``<pid>\\n`` to ``ran`` in the app's directory, so a test
can compare the runs that happened with the runs the store kept. No
scheduler starts (``enabled=False``): the tests make the calls.
``gunicorn 'tests.load_app:gunicorn_app()'`` takes the directory from
``ONECRON_TEST_LOAD_DIR``.
"""

from __future__ import annotations

import os

from webob import Request

from onecron import CronApp

SECRET = 'load test secret'


def build(directory: str) -> CronApp:
    """The CronApp on ``directory``: its SQLite store and run log."""
    app = CronApp(secret=SECRET, enabled=False, lock_dir=directory,
                  store=os.path.join(directory, 'runs.sqlite'),
                  occurrence_tokens=True)
    ran = os.path.join(directory, 'ran')

    # 'allow': concurrent calls all run, so every answer is a run
    @app.cronjob(minute=0, name='noop', overlap='allow')
    def noop(request: Request) -> None:
        with open(ran, 'a') as log:  # one short O_APPEND write per run
            log.write(f'{os.getpid()}\n')

    return app


def gunicorn_app() -> CronApp:
    """For gunicorn: the app on ``$ONECRON_TEST_LOAD_DIR``."""
    return build(os.environ['ONECRON_TEST_LOAD_DIR'])
