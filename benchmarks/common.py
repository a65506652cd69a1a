"""What the HTTP benchmarks share: a server on loopback, a timed client."""

from __future__ import annotations

import threading
import time
from typing import Any

import pycurl
from waitress.server import create_server


def serve(app: Any, threads: int = 4) -> str:
    """Serve ``app`` with waitress on 127.0.0.1 in a thread; its URL."""
    server = create_server(app, host='127.0.0.1', port=0, threads=threads)
    threading.Thread(target=server.run, daemon=True).start()
    return f'http://127.0.0.1:{server.effective_port}'


def ms_per_request(curl: pycurl.Curl, url: str, count: int) -> float:
    """Milliseconds per request of ``url``, ``count`` times in a row over
    one kept-alive connection; every answer must be 200."""
    curl.setopt(pycurl.URL, url)
    started = time.perf_counter()
    for _ in range(count):
        curl.perform()
        assert curl.getinfo(pycurl.RESPONSE_CODE) == 200
    return (time.perf_counter() - started) / count * 1e3
