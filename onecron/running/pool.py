"""A pool per application id: at most ``size`` of its jobs run at once.

Revel's pool, for one tenant at a time: calls beyond the limit wait in
order and start as earlier ones finish, so one tenant's burst cannot take
every worker of the site.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from onecron.running.caller import Caller, CallRequest, CallResult


class Pool:
    """Hands calls to ``caller``, at most ``size`` in flight (None: no limit).

    :param caller: makes the calls
    :param size: calls of this pool in flight at once, or None
    """

    def __init__(self, caller: Caller, size: int | None = None) -> None:
        if size is not None and (not isinstance(size, int) or size < 1):
            raise ValueError(f'pool_size must be a whole number of at '
                             f'least 1, got {size!r}')
        self.caller = caller
        self.size = size
        self._mutex = threading.Lock()
        self._waiting: deque[CallRequest] = deque()
        self._running = 0

    @property
    def queued(self) -> int:
        """Calls waiting for a free place."""
        return len(self._waiting)

    @property
    def running(self) -> int:
        """Calls handed to the caller and not finished yet."""
        return self._running

    def submit(self, requests: Iterable[CallRequest]) -> None:
        """Start what fits now; queue the rest in order."""
        start = []
        with self._mutex:
            for request in requests:
                if self.size is None or self._running < self.size:
                    self._running += 1
                    start.append(self._tracked(request))
                else:
                    self._waiting.append(request)
        if start:
            self.caller.call_all(start)

    def _tracked(self, request: CallRequest) -> CallRequest:
        on_done = request.on_done

        def done(result: CallResult) -> None:
            try:
                on_done(result)
            finally:
                self._release()

        return request._replace(on_done=done)

    def _release(self) -> None:
        with self._mutex:
            self._running -= 1
            if not self._waiting:
                return
            self._running += 1
            request = self._tracked(self._waiting.popleft())
        # a queued call whose time has passed starts at once
        self.caller.call_all([request._replace(not_before=None)])

    def __repr__(self) -> str:
        return (f'<Pool size={self.size} running={self._running} '
                f'queued={len(self._waiting)}>')
