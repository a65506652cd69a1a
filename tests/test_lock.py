"""The host lock, across real processes: one holder, takeover after death."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from onecron.lock import HostLock, JobLocks, lock_path

from .conftest import wait_for

HOLDER = textwrap.dedent('''
    import sys, time
    from onecron.lock import HostLock
    lock = HostLock(sys.argv[1])
    print('held' if lock.acquire() else 'busy', flush=True)
    time.sleep(60)
''')


def hold_in_child(path: str) -> subprocess.Popen[str]:
    child = subprocess.Popen([sys.executable, '-c', HOLDER, path],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == 'held'
    return child


def test_lock_path_is_inside_the_dir_whatever_the_id(tmp_path) -> None:
    """A hostile tenant id cannot name a file outside the lock dir."""
    path = lock_path(str(tmp_path), '../../etc/passwd')
    assert os.path.dirname(path) == str(tmp_path)
    assert lock_path(str(tmp_path), 'a/b') != lock_path(str(tmp_path), 'a_b')


def test_only_one_process_holds_it(tmp_path) -> None:
    """While another process holds the lock, acquire() says no."""
    path = lock_path(str(tmp_path), 'app')
    child = hold_in_child(path)
    try:
        lock = HostLock(path)
        assert not lock.acquire()
        assert not lock.held
    finally:
        child.kill()
        child.wait()


def test_taken_over_after_kill_9(tmp_path) -> None:
    """When the holder is killed with SIGKILL, the lock becomes free."""
    path = lock_path(str(tmp_path), 'app')
    child = hold_in_child(path)
    lock = HostLock(path)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert wait_for(lock.acquire, timeout=5)
    lock.release()


def test_each_application_id_has_a_lock_of_its_own(tmp_path) -> None:
    """Another process holding one id's lock leaves the others free."""
    child = hold_in_child(lock_path(str(tmp_path), 'town-a'))
    try:
        other = HostLock(lock_path(str(tmp_path), 'town-b'))
        assert other.acquire()
        other.release()
        assert not HostLock(lock_path(str(tmp_path), 'town-a')).acquire()
    finally:
        child.kill()
        child.wait()


def test_a_thousand_ids_hold_one_file_open(tmp_path) -> None:
    """1,000 held scheduler locks cost one descriptor, not 1,000."""
    def open_files() -> int:
        return len(os.listdir('/proc/self/fd'))

    before = open_files()
    locks = [HostLock(lock_path(str(tmp_path), f'tenant-{n}'))
             for n in range(1000)]
    try:
        assert all(lock.acquire() for lock in locks)
        assert open_files() <= before + 1
    finally:
        for lock in locks:
            lock.release()


def test_release_frees_it_for_others(tmp_path) -> None:
    """release() lets another holder in; acquire() again re-takes it."""
    path = lock_path(str(tmp_path), 'app')
    first, second = HostLock(path), HostLock(path)
    assert first.acquire() and first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_forget_in_child_keeps_the_parents_lock(tmp_path) -> None:
    """A forked child that forgets its copy leaves the parent's lock held."""
    path = lock_path(str(tmp_path), 'app')
    lock = HostLock(path)
    assert lock.acquire()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        lock.forget()
        os._exit(0 if not HostLock(path).acquire() else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert not HostLock(path).acquire()
    lock.release()
    assert HostLock(path).acquire()


def test_job_locks_keep_only_a_few_files_open(tmp_path: Path) -> None:
    """Runs of many (tenant, job) pairs leave at most keep_open lock files
    open; close() closes those; a closed file reopens on the next run and
    still excludes."""
    locks = JobLocks(str(tmp_path))

    def open_files() -> int:
        return len(os.listdir('/proc/self/fd'))

    before = open_files()
    for tenant in range(300):
        assert locks.acquire(f'tenant-{tenant}', 'job')
        locks.release(f'tenant-{tenant}', 'job')
    assert open_files() - before <= JobLocks.keep_open
    locks.close()
    assert open_files() <= before
    assert locks.acquire('tenant-0', 'job')
    try:
        assert not locks.acquire('tenant-0', 'job')  # held: refused
    finally:
        locks.release('tenant-0', 'job')
