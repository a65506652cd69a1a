"""Serve the example app with waitress on 127.0.0.1:8080."""

from __future__ import annotations

import logging

from waitress import serve

from .app import app


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format='%(asctime)s %(levelname)-7s %(name)s: %(message)s')
    logging.getLogger('waitress.queue').setLevel(logging.ERROR)
    for name, job in app.jobs.items():
        logging.info('job %s: %s, at %s', name,
                     job.schedule.describe() if job.schedule else 'manual',
                     app.url_for(name))
    # start at once: do not wait for the first request to wake the jobs
    app.start()
    logging.info('status page: http://127.0.0.1:8080%s/', app.prefix)
    serve(app, host='127.0.0.1', port=8080)


if __name__ == '__main__':
    main()
