"""The per-host scheduler lock: a non-blocking ``fcntl.flock`` on a file.

One process per host and application id holds it and fires that id's jobs;
the others stand by and retry. The kernel drops a flock when its holder
dies, ``kill -9`` included, so a standby takes over without any cleanup.
"""

from __future__ import annotations

import errno
import functools
import fcntl
import hashlib
import os
import re
import tempfile
import threading
import weakref


#: held while a non-blocking lock is being taken, and around every fork
_no_fork = threading.Lock()
os.register_at_fork(before=_no_fork.acquire,
                    after_in_parent=_no_fork.release,
                    after_in_child=_no_fork.release)


@functools.lru_cache(maxsize=4096)
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

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> bool:
        """Take the lock if it is free; True when held afterwards."""
        if self._fd is not None:
            return True
        # no fork between opening and noting the descriptor: a child would
        # inherit a copy nobody knows of, holding the lock after we die
        with _no_fork:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN,
                                   errno.EACCES):
                    return False
                raise
            self._fd = fd
        # for people looking at the host: who holds it
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


class JobLocks:
    """One run at a time of each job on this host (``overlap=``).

    A thread lock per job gates the threads of this process without a
    system call; a flock on the job's lock file, kept open, gates the other
    processes. Fewer system calls matter here: each one hands the GIL
    around, and under a burst of runs that costs far more than the call.
    """

    def __init__(self, lock_dir: str | None) -> None:
        self.lock_dir = lock_dir
        self._mutex = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}
        _job_locks.add(self)

    def acquire(self, application_id: str, name: str,
                blocking: bool = False) -> bool:
        """Take the job's lock; False when it is taken (and not blocking)."""
        local, fd = self._lock_of(application_id, name)
        if not local.acquire(blocking):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as error:
            local.release()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            raise
        return True

    def release(self, application_id: str, name: str) -> None:
        """Release the job's lock taken with :meth:`acquire`."""
        local, fd = self._lock_of(application_id, name)
        fcntl.flock(fd, fcntl.LOCK_UN)
        local.release()

    def _lock_of(self, application_id: str,
                 name: str) -> tuple[threading.Lock, int]:
        key = f'{application_id}\x00job\x00{name}'
        entry = self._locks.get(key)
        if entry is None:
            with self._mutex:
                entry = self._locks.get(key)
                if entry is None:
                    fd = os.open(lock_path(self.lock_dir, key),
                                 os.O_RDWR | os.O_CREAT, 0o600)
                    entry = self._locks[key] = (threading.Lock(), fd)
        return entry

    def _after_fork_in_child(self) -> None:
        # the parent's descriptors share its locks: open our own anew
        for _, fd in self._locks.values():
            os.close(fd)
        self._locks = {}
        self._mutex = threading.Lock()

    def __repr__(self) -> str:
        return f'<JobLocks {self.lock_dir!r} {len(self._locks)} job(s)>'


_job_locks: weakref.WeakSet[JobLocks] = weakref.WeakSet()


def _reset_job_locks_in_child() -> None:
    for locks in list(_job_locks):
        locks._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_job_locks_in_child)
