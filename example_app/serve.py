"""Serve a framework example with waitress on 127.0.0.1:8080."""

from __future__ import annotations

import logging
from typing import Any

from waitress import serve as waitress_serve

from onecron import CronApp


def serve(application: Any, cron: CronApp) -> None:
    """Log the jobs, start ``cron``'s scheduler and serve forever.

    ``application`` is what the WSGI server serves: ``cron`` itself, or
    the framework's app when ``cron`` sits inside it (Flask's
    ``wsgi_app``). Start the scheduler here, where the app is served, not
    at import: a dev reloader's watcher process imports the app too.
    """
    logging.basicConfig(
        level=logging.INFO,
        format='%(asctime)s %(levelname)-7s %(name)s: %(message)s')
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)
    # the jobs' signed URLs never go to a log: ``onecron url APP JOB``
    # prints one for an external caller
    for name, job in cron.jobs.items():
        logging.info('job %s: %s', name,
                     job.schedule.describe() if job.schedule else 'manual')
    cron.start()
    logging.info('status page: http://127.0.0.1:8080%s/', cron.prefix)
    waitress_serve(application, host='127.0.0.1', port=8080)
