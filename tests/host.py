"""A whole onecron host in one process, for tests that need real processes.

``python -m tests.host LOCK_DIR RUN_LOG [--fork]`` serves a CronApp on a free
loopback port with a job due every second, and appends one line per run to
RUN_LOG: ``<pid> <nominal occurrence>``. With ``--fork`` it starts the
scheduler, then forks (as gunicorn ``--preload`` does) and the child starts
its own; both keep running.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from waitress.server import create_server
from webob import Request

from onecron import CronApp


def main() -> None:
    lock_dir, run_log = sys.argv[1], sys.argv[2]
    logging.basicConfig(level=logging.INFO)
    app = CronApp(secret='multi-process', lock_dir=lock_dir)

    @app.cronjob('* * * * * *', name='tick', jitter=False)
    def tick(request: Request) -> None:
        line = f'{os.getpid()} {request.headers["X-Onecron-Occurrence"]}\n'
        with open(run_log, 'a') as log:
            log.write(line)

    server = create_server(app, host='127.0.0.1', port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    base_url = f'http://127.0.0.1:{server.effective_port}'
    app.start(base_url=base_url)
    if '--fork' in sys.argv:
        if os.fork() == 0:
            # the child: the parent's scheduler thread is not here
            assert not app.schedulers, app.schedulers
            child = create_server(app, host='127.0.0.1', port=0, threads=4)
            threading.Thread(target=child.run, daemon=True).start()
            app.start(base_url=f'http://127.0.0.1:{child.effective_port}')
    print(f'ready {os.getpid()}', flush=True)
    threading.Event().wait()


if __name__ == '__main__':
    main()
