"""The Django example served by waitress in a process of its own.

``python -m tests.django_host`` with ``EXAMPLE_DJANGO_DB``, ``ONECRON_STORE``
and ``ONECRON_LOCK_DIR`` set: migrates the database, serves
``example_app.django_app.wsgi.application`` on a free loopback port and
prints ``ready <base URL> <job URL>``; a line ``start`` on stdin starts the
scheduler. Django configures itself once per process (settings, logging,
the ``TZ`` variable), so it stays out of the test run's process.
"""

from __future__ import annotations

import sys
import threading

from django.core.management import call_command
from waitress.server import create_server

from example_app.django_app.wsgi import application
from onecron.django import get_cronapp


def main() -> None:
    cron = get_cronapp()
    # no scheduler until the test says so: not even with the first request
    cron.stop()
    call_command('migrate', verbosity=0)
    server = create_server(application, host='127.0.0.1', port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base_url = f'http://127.0.0.1:{server.effective_port}'
    name, = cron.jobs
    print('ready', base_url, cron.url_for(name, base_url), flush=True)
    for line in sys.stdin:
        if line.strip() == 'start':
            cron.start(base_url=base_url)
            print('started', flush=True)


if __name__ == '__main__':
    main()
