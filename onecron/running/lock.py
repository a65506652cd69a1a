"""Host locks: one scheduler per host and application id, one run per job.

:class:`HostLock` is the scheduler's: one process per host and application
id holds it and fires that id's jobs; the others stand by and retry. It is
a POSIX record lock on one byte of a file the whole lock directory shares
(``onecron-scheduler.locks``), the byte chosen by the application id, so a
thousand tenants hold one file open, not a thousand. The kernel drops the
lock when its holder dies, ``kill -9`` included, and a forked child never
inherits it, so a standby takes over without any cleanup.

:class:`JobLocks` keeps a job from running twice at once on a host
(``overlap=``), with an ``flock`` per job.

The locks live in a directory of their own, never in a shared one: by
default a private directory of the user (see :func:`lock_directory`),
created ``0700`` and refused when another user owns it or can write to
it. A missing directory is created, parents too. A lock file is opened
without following a symbolic link, created ``0600``, and must be a
regular file of this user. Anything else raises :class:`LockError`,
naming the path and what is wrong with it.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import hashlib
import os
import re
import stat
import tempfile
import threading
import weakref
from collections.abc import Callable

from onecron.errors import LockError

__all__ = ['SCHEDULER_LOCKS', 'HostLock', 'JobLocks', 'LockError',
           'lock_directory', 'lock_path']

#: the file of a lock directory whose bytes are the schedulers' locks
SCHEDULER_LOCKS = 'onecron-scheduler.locks'

#: what the user can do about a lock directory or file that is wrong
_REMEDY = ('remove it, or set CronApp(lock_dir=...) to a directory of '
           'your own')


def lock_directory(lock_dir: str | None) -> str:
    """Where the locks of ``CronApp(lock_dir=...)`` live.

    ``lock_dir`` if given; else (None) a private directory of this user:
    ``$XDG_RUNTIME_DIR/onecron`` when ``XDG_RUNTIME_DIR`` is an absolute
    directory of this user that no one else can write to, else
    ``onecron-<uid>`` in the temp directory. Never the shared temp
    directory itself. It depends only on the environment, not on whether
    the directory exists yet: the locks create it when they first open.
    """
    if lock_dir:
        return lock_dir
    runtime = os.environ.get('XDG_RUNTIME_DIR', '')
    if os.path.isabs(runtime) and _owned_and_closed(runtime):
        return os.path.join(runtime, 'onecron')
    return os.path.join(tempfile.gettempdir(), f'onecron-{os.geteuid()}')


# tempfile's first gettempdir() probes the candidate directories while it
# holds a module lock: a scheduler thread doing that while a pre-fork
# server (uWSGI's master, gunicorn --preload) forks its workers leaves the
# lock held in every worker, whose next gettempdir() never returns. Probe
# once now, at import, before any thread of ours runs.
tempfile.gettempdir()


def _owned_and_closed(path: str) -> bool:
    """Whether ``path`` is a directory of ours only we can write to."""
    try:
        info = os.stat(path)
    except OSError:
        return False
    return (stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid()
            and not info.st_mode & 0o022)


def lock_path(lock_dir: str | None, application_id: str) -> str:
    """The name of ``application_id``'s lock in ``lock_dir``.

    A path in ``lock_dir`` (see :func:`lock_directory`): :class:`JobLocks`
    creates it as the job's lock file; :class:`HostLock` locks the byte of
    the directory's shared file that it names. The readable part is
    sanitised and a digest keeps distinct ids apart, so a tenant id can
    never name a path outside ``lock_dir``.
    """
    return _lock_path(lock_directory(lock_dir), application_id)


@functools.lru_cache(maxsize=4096)
def _lock_path(directory: str, application_id: str) -> str:
    readable = re.sub(r'[^A-Za-z0-9_.-]', '_', application_id)[:40]
    digest = hashlib.sha1(application_id.encode('utf-8')).hexdigest()[:10]
    return os.path.join(directory, f'onecron-{readable}-{digest}.lock')


def _open_lock_file(path: str) -> int:
    """The lock file ``path``, opened for locking (created ``0600`` if
    missing) in its directory (created, and checked when it is the
    default one).

    Opened relative to the checked directory's descriptor, never
    following a symbolic link, and refused unless it is a regular file of
    this user with no other name.

    :raises LockError: naming the path and what is wrong
    """
    directory, name = os.path.split(path)
    dir_fd = _open_directory(directory or os.curdir)
    try:
        try:
            fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
        except OSError as error:
            why = f'cannot be opened: {error.strerror}'
            try:  # what is there may say better why
                why = _file_problem(os.stat(
                    name, dir_fd=dir_fd, follow_symlinks=False)) or why
            except OSError:
                pass
            raise LockError(f'the lock file {path!r} {why}: {_REMEDY}',
                            path, error.errno) from error
        return _checked(fd, _file_problem, 'the lock file', path)
    finally:
        os.close(dir_fd)


def _checked(fd: int, problem_of: Callable[[os.stat_result], str | None],
             what: str, path: str) -> int:
    """``fd`` if what it opened has no problem, else closed and a
    :class:`LockError` naming ``what`` at ``path``."""
    try:
        problem = problem_of(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    if problem is not None:
        os.close(fd)
        raise LockError(f'{what} {path!r} {problem}: {_REMEDY}', path)
    return fd


def _file_problem(info: os.stat_result) -> str | None:
    """What makes ``info`` no lock file of ours, or None."""
    if stat.S_ISLNK(info.st_mode):
        return 'is a symbolic link (a lock file is never followed)'
    if stat.S_ISDIR(info.st_mode):
        return 'is a directory, not a lock file'
    if not stat.S_ISREG(info.st_mode):
        return 'is not a regular file'
    if info.st_uid != os.geteuid():
        return (f'belongs to uid {info.st_uid}, not to uid {os.geteuid()} '
                f'(this process)')
    if info.st_nlink != 1:
        return f'has {info.st_nlink} names (hard links), not one'
    return None


def _open_directory(directory: str) -> int:
    """A descriptor of the lock directory ``directory``, made ``0700``
    (parents too) if missing.

    The default directory (``lock_dir=None``) must be a real directory,
    not a symbolic link, of this user, that no one else can write to; a
    ``lock_dir`` given is the user's choice and only has to be a
    directory.

    :raises LockError: naming the directory and what is wrong
    """
    private = directory == lock_directory(None)
    if not os.path.lexists(directory):
        _make_directories(directory)
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    if private:
        flags |= os.O_NOFOLLOW
    try:
        fd = os.open(directory, flags)
    except OSError as error:
        why = f'cannot be opened: {error.strerror}'
        try:  # what is there may say better why (lstat: the link itself)
            mode = os.stat(directory, follow_symlinks=not private).st_mode
        except OSError:
            mode = stat.S_IFDIR
        if stat.S_ISLNK(mode):
            why = 'is a symbolic link, not a directory'
        elif not stat.S_ISDIR(mode):
            why = 'is not a directory'
        raise LockError(f'the lock directory {directory!r} {why}: '
                        f'{_REMEDY}', directory, error.errno) from error
    if not private:
        return fd
    return _checked(fd, _directory_problem, 'the lock directory', directory)


def _directory_problem(info: os.stat_result) -> str | None:
    """What makes the directory ``info`` not private to us, or None."""
    if info.st_uid != os.geteuid():
        return (f'belongs to uid {info.st_uid}, not to uid {os.geteuid()} '
                f'(this process)')
    if info.st_mode & 0o022:
        return (f'can be written by other users (mode '
                f'{stat.S_IMODE(info.st_mode):04o}, must be 0700)')
    return None


def _make_directories(directory: str) -> None:
    """Create ``directory`` and its missing parents, each ``0700``."""
    parent = os.path.dirname(directory)
    if parent and parent != directory and not os.path.lexists(parent):
        _make_directories(parent)
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass  # made meanwhile: it is checked when opened
    except OSError as error:
        raise LockError(f'the lock directory {directory!r} cannot be '
                        f'created: {error.strerror}', directory,
                        error.errno) from error


# POSIX record locks belong to the process: they do not keep its own
# threads apart (so these do), and closing *any* descriptor of the file
# drops them all (so each file stays open for the process's life).
_mutex = threading.Lock()
_files: dict[str, int] = {}
_held: dict[tuple[str, int], HostLock] = {}


def _after_fork_in_child() -> None:
    global _mutex
    _mutex = threading.Lock()
    _held.clear()  # a child holds none of its parent's record locks


os.register_at_fork(after_in_child=_after_fork_in_child)


class HostLock:
    """An exclusive lock named ``path`` (see :func:`lock_path`), taken
    without blocking: a byte of its directory's shared lock file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file = os.path.join(os.path.dirname(path), SCHEDULER_LOCKS)
        digest = hashlib.sha1(os.path.basename(path).encode()).digest()
        # a byte far out in the file (which stays empty): 2**62 bytes of
        # room make two ids meeting on one byte vanishingly unlikely
        self._byte = int.from_bytes(digest[:8], 'big') >> 2
        self._pid = 0

    @property
    def held(self) -> bool:
        """Whether this object holds the lock, in this process."""
        return (self._pid == os.getpid()
                and _held.get((self._file, self._byte)) is self)

    def acquire(self) -> bool:
        """Take the lock if it is free; True when held afterwards.

        :raises LockError: the lock's directory or file is wrong, or
            cannot be locked (nothing is held then; try again later)
        """
        key = (self._file, self._byte)
        with _mutex:
            holder = _held.get(key)
            if holder is not None:
                return holder is self
            fd = _files.get(self._file)
            if fd is None:
                fd = _files[self._file] = _open_lock_file(self._file)
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1,
                            self._byte)
            except OSError as error:
                if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN,
                                   errno.EACCES):
                    return False
                raise LockError(f'the lock file {self._file!r} cannot be '
                                f'locked: {error.strerror}', self._file,
                                error.errno) from error
            _held[key] = self
            self._pid = os.getpid()
        return True

    def release(self) -> None:
        """Release the lock (no-op when not held)."""
        key = (self._file, self._byte)
        with _mutex:
            if _held.get(key) is not self or self._pid != os.getpid():
                return
            del _held[key]
            fcntl.lockf(_files[self._file], fcntl.LOCK_UN, 1, self._byte)

    def forget(self) -> None:
        """In a forked child: nothing to drop, the lock stayed with the
        parent (kept for callers written for inherited locks)."""

    def __repr__(self) -> str:
        state = 'held' if self.held else 'free'
        return f'<HostLock {self.path!r} {state}>'


class _JobLock:
    """A job's thread lock and its lock file, while open."""

    __slots__ = ('local', 'fd')

    def __init__(self) -> None:
        self.local = threading.Lock()
        self.fd: int | None = None


class JobLocks:
    """One run at a time of each job on this host (``overlap=``).

    A thread lock per job gates the threads of this process without a
    system call; a flock on the job's lock file gates the other processes.
    The file stays open after a run, as opening it costs system calls and
    each hands the GIL around, which under a burst of runs costs far more
    than the call; but at most :attr:`keep_open` files stay open when no
    run holds them, so a thousand tenants' jobs do not use up the
    process's file descriptors (waitress's ``select()`` stops working
    past descriptor 1023).
    """

    #: files kept open between runs, at most
    keep_open = 64

    def __init__(self, lock_dir: str | None) -> None:
        self.lock_dir = lock_dir
        self._mutex = threading.Lock()
        self._locks: dict[str, _JobLock] = {}
        #: jobs whose file is open and not held, oldest first
        self._idle: dict[str, None] = {}
        _job_locks.add(self)

    def acquire(self, application_id: str, name: str,
                blocking: bool = False) -> bool:
        """Take the job's lock; False when it is taken (and not blocking).

        :raises LockError: the lock's directory or file is wrong, or
            cannot be locked (nothing is held then)
        """
        key = f'{application_id}\x00job\x00{name}'
        entry = self._entry(key)
        if not entry.local.acquire(blocking):
            return False
        try:
            fd = self._open(key, entry)
        except BaseException:
            entry.local.release()
            raise
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except OSError as error:
            self._put_back(key, entry)
            entry.local.release()
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return False
            path = lock_path(self.lock_dir, key)
            raise LockError(f'the lock file {path!r} cannot be locked: '
                            f'{error.strerror}', path, error.errno) from error
        return True

    def release(self, application_id: str, name: str) -> None:
        """Release the job's lock taken with :meth:`acquire`."""
        key = f'{application_id}\x00job\x00{name}'
        entry = self._locks[key]
        assert entry.fd is not None
        try:
            fcntl.flock(entry.fd, fcntl.LOCK_UN)
        finally:
            self._put_back(key, entry)
            entry.local.release()

    def close(self) -> None:
        """Close the files no run holds (they reopen when needed)."""
        with self._mutex:
            for key in list(self._idle):
                self._close(key)

    def _entry(self, key: str) -> _JobLock:
        entry = self._locks.get(key)
        if entry is None:
            with self._mutex:
                entry = self._locks.setdefault(key, _JobLock())
        return entry

    def _open(self, key: str, entry: _JobLock) -> int:
        """The job's open file (the caller holds the job's thread lock)."""
        with self._mutex:
            self._idle.pop(key, None)
            if entry.fd is None:
                entry.fd = _open_lock_file(lock_path(self.lock_dir, key))
            return entry.fd

    def _put_back(self, key: str, entry: _JobLock) -> None:
        """The run is over: keep the file open, unless too many are."""
        with self._mutex:
            if entry.fd is None:
                return
            self._idle[key] = None
            while len(self._idle) > self.keep_open:
                self._close(next(iter(self._idle)))

    def _close(self, key: str) -> None:
        """Close an idle file (the caller holds ``_mutex``)."""
        del self._idle[key]
        entry = self._locks[key]
        fd, entry.fd = entry.fd, None
        if fd is not None:
            os.close(fd)

    def _after_fork_in_child(self) -> None:
        # the parent's descriptors share its locks: open our own anew
        for entry in self._locks.values():
            if entry.fd is not None:
                os.close(entry.fd)
        self._locks = {}
        self._idle = {}
        self._mutex = threading.Lock()

    def __del__(self) -> None:
        for entry in self._locks.values():
            if entry.fd is not None:
                try:
                    os.close(entry.fd)
                except OSError:
                    pass

    def __repr__(self) -> str:
        return (f'<JobLocks {self.lock_dir!r} {len(self._locks)} job(s), '
                f'{len(self._idle)} idle open>')


_job_locks: weakref.WeakSet[JobLocks] = weakref.WeakSet()


def _reset_job_locks_in_child() -> None:
    for locks in list(_job_locks):
        locks._after_fork_in_child()


os.register_at_fork(after_in_child=_reset_job_locks_in_child)
