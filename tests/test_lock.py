"""The host lock, across real processes: one holder, takeover after death;
and the lock directory and files, safe from the other local users."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from onecron.errors import LockError, OnecronError
from onecron.running.lock import (
    SCHEDULER_LOCKS,
    HostLock,
    JobLocks,
    lock_directory,
    lock_path,
)

from .conftest import wait_for

#: a uid that is not ours (nobody), for the other local user's files
OTHER_UID = 65534

HOLDER = textwrap.dedent('''
    import sys, time
    from onecron.running.lock import HostLock
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


# -- the lock directory and files ----------------------------------------

def job_file(lock_dir: str | None, application_id: str, name: str) -> Path:
    """The lock file of a job (what JobLocks opens)."""
    return Path(lock_path(lock_dir, f'{application_id}\x00job\x00{name}'))


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def other_user() -> None:
    """Files of another user can be made (chown needs root)."""
    if os.geteuid() != 0:
        pytest.skip('making files of another user needs root')


def test_a_missing_lock_dir_is_created_private(tmp_path: Path) -> None:
    """A lock_dir that does not exist is created, parents too, 0700, and
    both locks work in it; their files are 0600."""
    host_dir, job_dir = tmp_path / 'a' / 'b' / 'host', tmp_path / 'c' / 'job'
    lock = HostLock(lock_path(str(host_dir), 'app'))
    assert lock.acquire()
    lock.release()
    locks = JobLocks(str(job_dir))
    assert locks.acquire('app', 'job')
    locks.release('app', 'job')
    locks.close()
    for made in (tmp_path / 'a', tmp_path / 'a' / 'b', host_dir,
                 tmp_path / 'c', job_dir):
        assert mode(made) == 0o700, made
    assert mode(host_dir / SCHEDULER_LOCKS) == 0o600
    assert mode(job_file(str(job_dir), 'app', 'job')) == 0o600


@pytest.mark.parametrize('dangling', [False, True])
def test_a_planted_symlink_is_never_followed(tmp_path: Path, shared: Path,
                                             dangling: bool) -> None:
    """A symlink named like a lock file, in a shared lock_dir, is refused
    with an error naming it: its target is neither created, opened for
    writing nor changed."""
    target = tmp_path / 'victim'
    if not dangling:
        target.write_text('precious\n')
        target.chmod(0o644)
    before = None if dangling else target.stat()
    host_link = shared / SCHEDULER_LOCKS
    job_link = job_file(str(shared), 'app', 'job')
    host_link.symlink_to(target)
    job_link.symlink_to(target)
    with pytest.raises(LockError, match='symbolic link') as raised:
        HostLock(lock_path(str(shared), 'app')).acquire()
    assert raised.value.path == str(host_link)
    assert str(host_link) in str(raised.value)
    with pytest.raises(LockError, match='symbolic link') as raised:
        JobLocks(str(shared)).acquire('app', 'job')
    assert raised.value.path == str(job_link)
    if dangling:
        assert not target.exists()
    else:
        after = target.stat()
        assert before is not None
        assert target.read_text() == 'precious\n'
        assert (after.st_mode, after.st_uid, after.st_mtime_ns) == (
            before.st_mode, before.st_uid, before.st_mtime_ns)


@pytest.mark.usefixtures('other_user')
def test_another_users_lock_file_is_refused(shared: Path) -> None:
    """A lock file another user planted (and could lock themselves) is
    refused, naming the file and its owner, not silently used."""
    for path in (shared / SCHEDULER_LOCKS, job_file(str(shared), 'a', 'j')):
        path.touch()
        path.chmod(0o666)
        os.chown(path, OTHER_UID, OTHER_UID)
    with pytest.raises(LockError, match=f'belongs to uid {OTHER_UID}'):
        HostLock(lock_path(str(shared), 'a')).acquire()
    locks = JobLocks(str(shared))
    with pytest.raises(LockError, match=f'belongs to uid {OTHER_UID}'):
        locks.acquire('a', 'j')
    # the failed attempt left nothing held: the job's thread lock is free
    (shared / job_file(str(shared), 'a', 'j').name).unlink()
    assert locks.acquire('a', 'j')
    locks.release('a', 'j')


def test_a_directory_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    """A directory (or another non-file) where a lock file belongs is a
    LockError that names it, and an OSError for those who catch that."""
    (tmp_path / SCHEDULER_LOCKS).mkdir()
    job_file(str(tmp_path), 'a', 'j').mkdir()
    with pytest.raises(LockError, match='is a directory') as raised:
        HostLock(lock_path(str(tmp_path), 'a')).acquire()
    assert raised.value.path == str(tmp_path / SCHEDULER_LOCKS)
    assert isinstance(raised.value, OnecronError)
    assert isinstance(raised.value, OSError)
    with pytest.raises(LockError, match='is a directory'):
        JobLocks(str(tmp_path)).acquire('a', 'j')


def test_a_hard_link_at_the_lock_path_is_refused(tmp_path: Path) -> None:
    """A lock file with a second name (a file of ours linked in by
    someone) is refused."""
    mine = tmp_path / 'mine'
    mine.write_text('not a lock\n')
    os.link(mine, tmp_path / SCHEDULER_LOCKS)
    with pytest.raises(LockError, match='hard links'):
        HostLock(lock_path(str(tmp_path), 'a')).acquire()


def test_the_default_dir_is_private_to_the_user(shared: Path) -> None:
    """lock_dir=None: the locks go to onecron-<uid> in the temp directory,
    created 0700; nothing is put in the shared directory itself."""
    private = shared / f'onecron-{os.geteuid()}'
    assert lock_directory(None) == str(private)
    assert os.path.dirname(lock_path(None, 'app')) == str(private)
    lock = HostLock(lock_path(None, 'app'))
    assert lock.acquire()
    lock.release()
    locks = JobLocks(None)
    assert locks.acquire('app', 'job')
    locks.release('app', 'job')
    locks.close()
    assert os.listdir(shared) == [private.name]
    assert mode(private) == 0o700
    assert sorted(os.listdir(private)) == sorted([
        SCHEDULER_LOCKS, job_file(None, 'app', 'job').name])


def test_the_default_dir_is_in_a_private_runtime_dir(
        tmp_path: Path, shared: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """$XDG_RUNTIME_DIR, if an absolute directory of ours closed to
    others, holds the default lock dir; else the temp directory does."""
    runtime = tmp_path / 'run'
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv('XDG_RUNTIME_DIR', str(runtime))
    assert lock_directory(None) == str(runtime / 'onecron')
    assert HostLock(lock_path(None, 'app')).acquire()
    assert mode(runtime / 'onecron') == 0o700
    fallback = str(shared / f'onecron-{os.geteuid()}')
    runtime.chmod(0o777)
    assert lock_directory(None) == fallback
    runtime.chmod(0o700)
    monkeypatch.setenv('XDG_RUNTIME_DIR', 'run')  # relative
    assert lock_directory(None) == fallback
    monkeypatch.setenv('XDG_RUNTIME_DIR', str(tmp_path / 'missing'))
    assert lock_directory(None) == fallback


def hostile_owner(path: Path) -> str:
    path.mkdir(mode=0o700)
    os.chown(path, OTHER_UID, OTHER_UID)
    return f'belongs to uid {OTHER_UID}, not to uid {os.geteuid()}'


def hostile_mode(path: Path) -> str:
    path.mkdir()
    path.chmod(0o777)
    return r'can be written by other users \(mode 0777'


def hostile_link(path: Path) -> str:
    elsewhere = path.parent / 'elsewhere'
    elsewhere.mkdir(mode=0o700)
    path.symlink_to(elsewhere)
    return 'is a symbolic link, not a directory'


def hostile_file(path: Path) -> str:
    path.write_text('')
    return 'is not a directory'


@pytest.mark.parametrize('plant', [hostile_owner, hostile_mode,
                                   hostile_link, hostile_file])
def test_a_hostile_default_dir_is_refused(
        shared: Path, plant: Callable[[Path], str]) -> None:
    """A pre-existing onecron-<uid> that is another user's, writable by
    others, a symlink or no directory: a clear error names it and what is
    wrong, and no lock file is made in or through it."""
    if plant is hostile_owner and os.geteuid() != 0:
        pytest.skip('making files of another user needs root')
    private = shared / f'onecron-{os.geteuid()}'
    problem = plant(private)
    attempts: list[Callable[[], bool]] = [
        lambda: HostLock(lock_path(None, 'app')).acquire(),
        lambda: JobLocks(None).acquire('app', 'job')]
    for attempt in attempts:
        with pytest.raises(LockError, match=problem) as raised:
            attempt()
        assert raised.value.path == str(private)
        assert f'the lock directory {str(private)!r}' in str(raised.value)
    assert not (shared / 'elsewhere' / SCHEDULER_LOCKS).exists()
    if private.is_dir() and not private.is_symlink():
        assert os.listdir(private) == []
