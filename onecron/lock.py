"""The per-host scheduler lock: a non-blocking ``fcntl.flock`` on a file.

One process per host and application id holds it and fires that id's jobs;
the others stand by and retry. The kernel drops a flock when its holder
dies, ``kill -9`` included, so a standby takes over without any cleanup.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import re
import tempfile
import threading


#: held while a non-blocking lock is being taken, and around every fork
_no_fork = threading.Lock()
os.register_at_fork(before=_no_fork.acquire,
                    after_in_parent=_no_fork.release,
                    after_in_child=_no_fork.release)


def lock_path(lock_dir: str | None, application_id: str) -> str:
    """The lock file of ``application_id`` in ``lock_dir``.

    The readable part is sanitised and a digest keeps distinct ids apart,
    so a tenant id can never name a path outside ``lock_dir``.
    """
    directory = lock_dir or tempfile.gettempdir()
    readable = re.sub(r'[^A-Za-z0-9_.-]', '_', application_id)[:40]
    digest = hashlib.sha1(application_id.encode('utf-8')).hexdigest()[:10]
    return os.path.join(directory, f'onecron-{readable}-{digest}.lock')


class HostLock:
    """An exclusive flock on ``path``, taken without blocking."""

    def __init__(self, path: str, *, note_holder: bool = True) -> None:
        self.path = path
        #: write the holder's pid into the file (costly on some file
        #: systems: off for the short per-run job locks)
        self.note_holder = note_holder
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self, blocking: bool = False) -> bool:
        """Take the lock if it is free; True when held afterwards.

        With ``blocking``, wait until it is free.
        """
        if self._fd is not None:
            return True
        if blocking:
            return self._take(blocking=True)
        # no fork between opening and noting the descriptor: a child would
        # inherit a copy nobody knows of, holding the lock after we die
        with _no_fork:
            return self._take(blocking=False)

    def _take(self, blocking: bool) -> bool:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        self._fd = fd
        if self.note_holder:  # for people looking at the host: who holds it
            os.ftruncate(fd, 0)
            os.write(fd, f'{os.getpid()}\n'.encode())
        return True

    def release(self) -> None:
        """Release the lock (no-op when not held)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

    def forget(self) -> None:
        """Close an inherited descriptor in a forked child, keeping the lock.

        Unlocking here would release the parent's lock, as parent and child
        share the open file description; closing our copy only drops the
        child's reference, so the lock goes away when the parent's does.
        """
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __repr__(self) -> str:
        state = 'held' if self.held else 'free'
        return f'<HostLock {self.path!r} {state}>'
