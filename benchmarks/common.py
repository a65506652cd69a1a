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


def request_times(curl: pycurl.Curl, url: str, count: int) -> list[float]:
    """Milliseconds each of ``count`` requests of ``url`` in a row took,
    over one kept-alive connection; every answer must be 200."""
    curl.setopt(pycurl.URL, url)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        curl.perform()
        times.append((time.perf_counter() - started) * 1e3)
        assert curl.getinfo(pycurl.RESPONSE_CODE) == 200
    return times


def ms_per_request(curl: pycurl.Curl, url: str, count: int) -> float:
    """Mean milliseconds per request of ``url`` (see request_times)."""
    return sum(request_times(curl, url, count)) / count
