"""The SQLite store on real files, with real processes and threads.

What every store does is in ``test_store.py``; here is what is SQLite's
own: WAL, one file shared by processes, crashes, the file system failing,
and the query plans that keep the status page fast.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from onecron.errors import OnecronError
from onecron.stores.base import Outcome, RunKeyTaken, StoreError, Trigger
from onecron.stores.sqlite import (
    _SCHEMA_1,
    _SCHEMA_2,
    _SCHEMA_3,
    SCHEMA_VERSION,
    SqliteStore,
)

T0 = datetime(2024, 3, 1, 8, 30, tzinfo=timezone.utc)

WRITER = textwrap.dedent('''
    import sys
    from datetime import datetime, timezone
    from onecron.stores.sqlite import SqliteStore
    from onecron.stores.base import Outcome, Trigger
    path, job = sys.argv[1:]
    sys.stdin.readline()  # start together, on a file neither has opened
    store = SqliteStore(path)
    for i in range(200):
        run = store.start_run('app', job, trigger=Trigger.SCHEDULER,
                              started=datetime.now(timezone.utc))
        store.finish_run(run, ended=datetime.now(timezone.utc),
                         outcome=Outcome.OK, output=str(i))
    print('done', flush=True)
''')

CRASHER = textwrap.dedent('''
    import sys
    from datetime import datetime, timezone
    from onecron.stores.sqlite import SqliteStore
    from onecron.stores.base import Outcome, Trigger
    store = SqliteStore(sys.argv[1])
    def now():
        return datetime.now(timezone.utc)
    print(store.start_run('app', 'long', trigger=Trigger.URL, started=now()),
          flush=True)
    while True:  # keep writing, so that the kill lands amid writes
        run = store.start_run('app', 'busy', trigger=Trigger.URL,
                              started=now())
        store.finish_run(run, ended=now(), outcome=Outcome.OK,
                         output='x' * 5000)
        print(run, flush=True)
''')


@pytest.fixture
def path(tmp_path: Path) -> str:
    """The path of a store file that does not exist yet."""
    return str(tmp_path / 'onecron.sqlite')


@pytest.fixture
def store(path: str) -> Iterator[SqliteStore]:
    """A new SQLite store at ``path``."""
    with SqliteStore(path) as store:
        yield store


def integrity(path: str) -> str:
    with sqlite3.connect(path) as db:
        result: str = db.execute('PRAGMA integrity_check').fetchone()[0]
    return result


def add(store: SqliteStore, job: str = 'job') -> int:
    return store.record_run('app', job, trigger=Trigger.URL, started=T0,
                            ended=T0, outcome=Outcome.OK)


def test_the_file_is_in_wal_mode(store: SqliteStore, path: str) -> None:
    """The store file uses WAL, so readers never wait for the writer."""
    with sqlite3.connect(path) as db:
        assert db.execute('PRAGMA journal_mode').fetchone()[0] == 'wal'


def test_the_wal_is_checkpointed_after_checkpoint_pages(path: str) -> None:
    """Runs go to the ``-wal`` file; once it holds CHECKPOINT_PAGES pages
    a commit copies them into the database and the file starts over, so
    it stays near that size however many runs follow."""

    class SmallWal(SqliteStore):
        CHECKPOINT_PAGES = 50

    page = 4096 + 24  # a WAL frame: a page and its header
    with SmallWal(path) as store:
        for _ in range(600):  # 1800 pages: dozens of checkpoints
            run = store.start_run('app', 'job', trigger=Trigger.URL,
                                  started=T0)
            store.finish_run(run, ended=T0, outcome=Outcome.OK)
        wal = os.path.getsize(path + '-wal')
        with sqlite3.connect(path) as db:  # no WAL frames of its own
            frames = db.execute('PRAGMA wal_checkpoint(PASSIVE)').fetchone()
        assert len(store.runs('app', limit=1000)) == 600
    assert 0 < wal <= (50 + 10) * page
    assert frames[1] < 50 + 10  # frames in the WAL: under the limit

def test_two_processes_lose_no_run(path: str) -> None:
    """Two processes writing 200 runs each at once into a new file: 400."""
    children = [subprocess.Popen([sys.executable, '-c', WRITER, path, job],
                                 stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, text=True)
                for job in ('first', 'second')]
    for child in children:
        assert child.stdin is not None
        child.stdin.write('go\n')
        child.stdin.flush()
    for child in children:
        out, _ = child.communicate(timeout=60)
        assert (child.returncode, out) == (0, 'done\n')
    with SqliteStore(path) as store:
        runs = store.runs('app', limit=1000)
    assert len(runs) == 400
    assert all(run.outcome is Outcome.OK for run in runs)
    for job in ('first', 'second'):
        outputs = sorted(int(run.output) for run in runs if run.job == job)
        assert outputs == list(range(200))


def test_kill_9_mid_run_leaves_it_visible_and_the_file_sound(
        path: str) -> None:
    """A process killed after start_run leaves an unfinished run, every
    committed run, and a file that passes integrity_check."""
    child = subprocess.Popen([sys.executable, '-c', CRASHER, path],
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    long_run = int(child.stdout.readline())
    committed = [int(child.stdout.readline()) for _ in range(50)]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    child.stdout.close()
    assert integrity(path) == 'ok'
    with SqliteStore(path) as store:
        run = store.get_run(long_run)
        assert run is not None and run.running and run.ended is None
        assert store.last_runs('app')['long'].id == long_run
        for run_id in committed:
            run = store.get_run(run_id)
            assert run is not None and run.outcome is Outcome.OK


def test_a_forked_child_uses_its_own_connection(store: SqliteStore) -> None:
    """After a fork, parent and child both write through the same store."""
    add(store, 'parent')
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child's coverage is not collected
        code = 1
        try:
            add(store, 'child')
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    add(store, 'parent again')
    assert set(store.last_runs('app')) == {'parent', 'child', 'parent again'}
    assert integrity(store.path) == 'ok'


def test_threads_write_through_their_own_connections(
        store: SqliteStore) -> None:
    """Eight threads writing at once store every run."""
    errors: list[BaseException] = []

    def write(job: str) -> None:
        try:
            for _ in range(25):
                add(store, job)
        except BaseException as error:  # pragma: no cover - shown below
            errors.append(error)

    threads = [threading.Thread(target=write, args=(f'job{i}',))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(store.runs('app', limit=1000)) == 200


@pytest.mark.skipif(not os.path.isdir('/proc/self/fd'),
                    reason='counts descriptors in /proc')
def test_ended_threads_do_not_leak_connections(store: SqliteStore) -> None:
    """Connections of threads that ended are closed: descriptors stay few."""
    def open_files() -> int:
        return len(os.listdir('/proc/self/fd'))

    add(store)
    before = open_files()
    for _ in range(30):
        thread = threading.Thread(target=add, args=(store,))
        thread.start()
        thread.join()
    assert open_files() <= before + 3


def test_a_newer_schema_is_refused(store: SqliteStore, path: str) -> None:
    """A file written by a newer onecron fails to open, naming versions."""
    store.close()
    newer = SCHEMA_VERSION + 1
    with sqlite3.connect(path) as db:
        db.execute(f'PRAGMA user_version = {newer}')
    with pytest.raises(OnecronError, match=f'schema version {newer}, newer '
                       f'than version {SCHEMA_VERSION}'):
        SqliteStore(path)


def test_a_version_1_file_is_upgraded_keeping_its_runs(path: str) -> None:
    """A store written before claims existed is upgraded on open."""
    with sqlite3.connect(path) as db:
        for statement in _SCHEMA_1:
            db.execute(statement)
        db.execute('PRAGMA user_version = 1')
        db.execute("""INSERT INTO runs (application_id, job, triggered_by,
            started) VALUES ('app', 'old', 'url', '2024-03-01T08:30:00+00:00')""")
    store = SqliteStore(path)
    try:
        assert store.version() == SCHEMA_VERSION
        assert [run.job for run in store.runs('app')] == ['old']
        assert store.claim('app', 'old', T0, key='k', now=T0)
    finally:
        store.close()


def test_a_version_2_file_keeps_its_runs_ids_and_keys(path: str) -> None:
    """Upgrading to version 3 (runs without AUTOINCREMENT) keeps every
    run, its id and its key, and no id is handed out twice: not even one
    that AUTOINCREMENT gave to a run deleted before the upgrade."""
    with sqlite3.connect(path, isolation_level=None) as db:
        for statement in (*_SCHEMA_1, *_SCHEMA_2):
            db.execute(statement)
        db.execute('PRAGMA user_version = 2')
        for job, key in (('a', 'key-a'), ('b', None), ('gone', None)):
            db.execute("""INSERT INTO runs (application_id, job,
                triggered_by, started, outcome, run_key) VALUES
                ('app', ?, 'url', '2024-03-01T08:30:00.000000+00:00', 'ok',
                 ?)""", (job, key))
        db.execute("DELETE FROM runs WHERE job = 'gone'")  # id 3
    store = SqliteStore(path)
    try:
        assert store.version() == SCHEMA_VERSION
        assert [(run.id, run.job, run.key) for run in store.runs('app')] == [
            (2, 'b', None), (1, 'a', 'key-a')]
        assert store.record_run('app', 'a', trigger=Trigger.URL, started=T0,
                                ended=T0, outcome=Outcome.OK,
                                key='key-a') == 1
        assert store.start_run('app', 'c', trigger=Trigger.URL,
                               started=T0) == 4
    finally:
        store.close()


def test_a_version_3_file_scopes_its_keys_to_their_jobs(
        path: str, caplog: pytest.LogCaptureFixture) -> None:
    """Upgrading to version 4 keeps the runs and their keys, which now
    belong to their application id and job: another job or tenant starts
    a run with the same key; the key's own job may not start it again."""
    with sqlite3.connect(path, isolation_level=None) as db:
        for statement in (*_SCHEMA_1, *_SCHEMA_2, *_SCHEMA_3):
            db.execute(statement)
        db.execute('PRAGMA user_version = 3')
        db.execute("""INSERT INTO runs (id, application_id, job,
            triggered_by, started, ended, outcome, output, run_key) VALUES
            (7, 'app', 'job', 'scheduler', '2024-03-01T08:30:00.000000+00:00',
             '2024-03-01T08:31:00.000000+00:00', 'ok', 'first', 'k')""")
    with caplog.at_level(logging.INFO, logger='onecron'), \
            SqliteStore(path) as store:
        assert f'from version 3 to {SCHEMA_VERSION}' in caplog.text
        assert store.version() == SCHEMA_VERSION == 5
        assert store.start_run('app', 'other', trigger=Trigger.URL,
                               started=T0, key='k') == 8
        assert store.start_run('tenant', 'job', trigger=Trigger.URL,
                               started=T0, key='k') == 9
        with pytest.raises(RunKeyTaken):
            store.start_run('app', 'job', trigger=Trigger.URL, started=T0,
                            key='k')
        assert store.record_run('app', 'job', trigger=Trigger.URL,
                                started=T0, ended=T0, outcome=Outcome.FAILED,
                                key='k') == 7
        run = store.get_run(7)
        assert run is not None and (run.outcome, run.output, run.key) == (
            Outcome.OK, 'first', 'k')


# --- the file's permissions -----------------------------------------------

@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def modes(path: str) -> dict[str, int]:
    """The permission bits of the store file, its -wal and its -shm."""
    return {suffix: stat.S_IMODE(os.stat(path + suffix).st_mode)
            for suffix in ('', '-wal', '-shm')}


@pytest.mark.parametrize('mask', [0o022, 0o000], ids=['022', '000'])
def test_the_files_are_the_owners_alone_whatever_the_umask(
        path: str, mask: int) -> None:
    """A new store file, its -wal and its -shm are 0600 under any umask:
    no other local user reads the outputs and run keys."""
    with umask(mask), SqliteStore(path) as store:
        add(store)
        assert modes(path) == {'': 0o600, '-wal': 0o600, '-shm': 0o600}


def test_a_file_open_to_others_is_tightened_and_said(
        path: str, caplog: pytest.LogCaptureFixture) -> None:
    """A store file of ours that others may read (made by an older
    onecron under umask 022), and its -wal and -shm, become 0600 when it
    is opened, with an INFO line naming each file."""
    with umask(0o022):
        SqliteStore(path).close()
        os.chmod(path, 0o644)
        # a connection of the old onecron keeps -wal and -shm, as 0644
        older = sqlite3.connect(path, isolation_level=None)
    try:
        older.execute("INSERT INTO holds VALUES ('app', 1, NULL)")
        assert modes(path) == {'': 0o644, '-wal': 0o644, '-shm': 0o644}
        with caplog.at_level(logging.INFO, logger='onecron'), \
                SqliteStore(path) as store:
            assert modes(path) == {'': 0o600, '-wal': 0o600, '-shm': 0o600}
            assert store.hold('app').held
    finally:
        older.close()
    for name in (path, path + '-wal', path + '-shm'):
        assert f'{name} could be used by other users (mode 644): now 600' \
            in caplog.text


def test_checking_the_file_keeps_the_locks_of_open_connections(
        store: SqliteStore, path: str) -> None:
    """Opening the store again, which checks the files' permissions, while
    a connection of this process holds the write lock leaves that lock
    held (closing any descriptor of a file drops all the process's locks
    on it), so another process still waits."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute('BEGIN IMMEDIATE')
        SqliteStore(path).close()
        other = subprocess.run(
            [sys.executable, '-c', textwrap.dedent('''
                import sqlite3, sys
                db = sqlite3.connect(sys.argv[1], timeout=0,
                                     isolation_level=None)
                try:
                    db.execute('BEGIN IMMEDIATE')
                except sqlite3.OperationalError as error:
                    print(error)
                else:
                    print('got the lock')
            '''), path], capture_output=True, text=True, timeout=30)
        assert other.stdout.strip() == 'database is locked', other
    finally:
        holder.close()


def test_a_symbolic_link_is_refused(tmp_path: Path, path: str) -> None:
    """A store path that is a symbolic link (another user's, in a shared
    directory, could point at any file of ours) fails naming the path,
    and the file it points at is left alone."""
    target = tmp_path / 'target'
    target.write_text('mine')
    target.chmod(0o644)
    os.symlink(target, path)
    with pytest.raises(StoreError, match='is a symbolic link') as error:
        SqliteStore(path)
    assert error.value.location == path
    assert target.read_text() == 'mine'
    assert stat.S_IMODE(target.stat().st_mode) == 0o644


def test_a_fifo_is_refused_at_once(path: str) -> None:
    """A FIFO at the store path is refused, not waited on forever."""
    os.mkfifo(path)
    with pytest.raises(StoreError, match='not a regular file'):
        SqliteStore(path)


def test_a_missing_directory_fails_naming_the_path(tmp_path: Path) -> None:
    """A path in a directory that does not exist raises StoreError."""
    path = str(tmp_path / 'missing' / 'onecron.sqlite')
    with pytest.raises(StoreError, match=re.escape(path)) as error:
        SqliteStore(path)
    assert error.value.location == path
    assert isinstance(error.value.__cause__, FileNotFoundError)


def test_a_file_as_directory_fails_naming_the_path(tmp_path: Path) -> None:
    """A path below a plain file (not writable as a dir) is a StoreError."""
    (tmp_path / 'file').write_text('')
    path = str(tmp_path / 'file' / 'onecron.sqlite')
    with pytest.raises(StoreError, match=re.escape(path)):
        SqliteStore(path)


def test_a_removed_file_fails_once_then_is_created_anew(
        store: SqliteStore, path: str) -> None:
    """Deleting the file is reported by the first call after the next
    file check (CHECK_FILE_EVERY); the one after starts a new file."""
    add(store)
    for suffix in ('', '-wal', '-shm'):
        os.remove(path + suffix)
    time.sleep(store.CHECK_FILE_EVERY)
    with pytest.raises(StoreError, match='removed or replaced'):
        add(store)
    run_id = add(store)
    assert [run.id for run in store.runs('app')] == [run_id]
    assert os.path.exists(path)


def test_a_removed_directory_keeps_failing(store: SqliteStore,
                                           path: str) -> None:
    """While the directory is gone, every call is a StoreError."""
    add(store)
    shutil.rmtree(os.path.dirname(path))
    for _ in range(2):
        with pytest.raises(StoreError, match=re.escape(path)):
            store.runs('app')
    os.mkdir(os.path.dirname(path))
    assert store.runs('app') == []


def test_locked_past_the_timeout_is_a_store_error(path: str) -> None:
    """A writer blocked longer than timeout gets StoreError naming the path."""
    store = SqliteStore(path, timeout=0.1)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute('BEGIN IMMEDIATE')
    try:
        with pytest.raises(StoreError, match=re.escape(path) + '.*locked'):
            add(store)
        assert store.runs('app') == []  # reading still works
    finally:
        blocker.execute('ROLLBACK')
        blocker.close()
    add(store)
    store.close()


def test_a_new_file_waits_for_another_process_to_switch_it_to_wal(
        path: str) -> None:
    """Opening a file that another connection is writing (as a process
    that opens the new file at the same time): SQLite refuses the switch
    to WAL at once, the store asks again and opens it when the other is
    done."""
    other = sqlite3.connect(path, isolation_level=None,
                            check_same_thread=False)
    os.chmod(path, 0o600)
    other.execute('BEGIN IMMEDIATE')
    done = threading.Timer(0.3, other.execute, ('COMMIT',))
    done.start()
    started = time.monotonic()
    try:
        with SqliteStore(path) as store:
            assert time.monotonic() - started >= 0.25
            assert store.version() == SCHEMA_VERSION
            add(store)
    finally:
        done.join()
        other.close()


def test_a_file_kept_locked_fails_the_switch_to_wal_after_the_timeout(
        path: str) -> None:
    """The switch to WAL asks again no longer than ``timeout``."""
    other = sqlite3.connect(path, isolation_level=None)
    os.chmod(path, 0o600)
    other.execute('BEGIN IMMEDIATE')
    started = time.monotonic()
    try:
        with pytest.raises(StoreError, match=re.escape(path) + '.*locked'):
            SqliteStore(path, timeout=0.3)
        assert 0.2 < time.monotonic() - started < 2
    finally:
        other.execute('ROLLBACK')
        other.close()


def test_a_full_disk_is_a_store_error(store: SqliteStore, path: str) -> None:
    """A write that finds no room fails with StoreError, and the run
    written before survives."""
    first = add(store)
    db = store._connection(shared=True)  # the one that writes
    pages = db.execute('PRAGMA page_count').fetchone()[0]
    db.execute(f'PRAGMA max_page_count = {pages}')
    with pytest.raises(StoreError, match='full'):
        store.record_run('app', 'job', trigger=Trigger.URL, started=T0,
                         ended=T0, outcome=Outcome.OK, output='x' * 60000)
    assert [run.id for run in store.runs('app')] == [first]


def test_a_closed_store_refuses_work(store: SqliteStore) -> None:
    """After close(), calls raise StoreError instead of reopening."""
    store.close()
    with pytest.raises(StoreError, match='closed'):
        add(store)


def query_plans(store: SqliteStore, call: Callable[[], object]) -> list[str]:
    """The query plan lines of every statement ``call`` runs on ``store``."""
    db = store._connection()
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    try:
        call()
    finally:
        db.set_trace_callback(None)
    assert statements
    return [row[3] for statement in statements
            for row in db.execute('EXPLAIN QUERY PLAN ' + statement)]


def test_status_queries_use_indexes_with_100000_runs(
        store: SqliteStore, path: str) -> None:
    """last_runs and runs search indexes over 200 jobs × 500 runs, and
    last_runs finds each job's newest run."""
    with sqlite3.connect(path) as db:
        db.executemany(
            'INSERT INTO runs (application_id, job, triggered_by, started, '
            "ended, outcome) VALUES ('app', ?, 'scheduler', ?, ?, ?)",
            ((f'job{i % 200:03}', '2024-03-01T08:30:00.000000+00:00',
              None if i % 1000 == 7 else '2024-03-01T08:30:01.000000+00:00',
              None if i % 1000 == 7 else 'ok') for i in range(100_000)))
    last = store.last_runs('app')
    assert len(last) == 200
    assert last['job000'].id == 99_801 and last['job199'].id == 100_000
    for call in (lambda: store.last_runs('app'),
                 lambda: store.runs('app', limit=20),
                 lambda: store.runs('app', 'job007', before_id=5000)):
        plans = query_plans(store, call)
        assert not [plan for plan in plans if plan.startswith('SCAN r')], \
            plans
        assert any(re.search(r'USING (COVERING )?INDEX runs_', plan)
                   for plan in plans), plans


def test_a_fork_during_writes_leaves_the_child_a_working_store(
        store: SqliteStore) -> None:
    """Forking while another thread writes (gunicorn --preload forks while
    the scheduler writes) gives a child whose store works: no lock is
    inherited held."""
    writing = threading.Event()
    done = threading.Event()

    def writer() -> None:
        while not done.is_set():
            add(store)
            writing.set()

    thread = threading.Thread(target=writer)
    thread.start()
    children = []
    try:
        writing.wait(5)
        for _ in range(20):
            pid = os.fork()
            if pid == 0:  # the child: one write, then out, whatever happens
                try:
                    add(store)
                    os._exit(0)
                finally:
                    os._exit(1)
            children.append(pid)
    finally:
        done.set()
        thread.join()
    deadline = time.monotonic() + 20
    for pid in children:
        while True:
            finished, status = os.waitpid(pid, os.WNOHANG)
            if finished:
                assert os.waitstatus_to_exitcode(status) == 0
                break
            if time.monotonic() > deadline:
                for other in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(other, signal.SIGKILL)
                pytest.fail('a forked child hung on its first write')
            time.sleep(0.01)


def test_a_keyed_write_racing_a_prune_keeps_the_store_error_contract(
        path: str) -> None:
    """A run written again with its key while another store's prune
    deletes the first (the row found gone after the conflict) is written
    anew, or fails with StoreError: never another exception."""
    writer, pruner = SqliteStore(path), SqliteStore(path)
    stop = threading.Event()
    failures: list[BaseException] = []

    def prune() -> None:
        while not stop.is_set():
            try:
                pruner.prune(now=T0, keep_runs=0)
            except StoreError:
                pass
            except BaseException as exc:  # what the test is about
                failures.append(exc)
                return

    thread = threading.Thread(target=prune)
    thread.start()
    written = 0
    deadline = time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline and not failures:
            key = f'key-{written}'
            for _ in range(3):  # the first writes, the others conflict
                try:
                    run_id = writer.record_run(
                        'app', 'job', trigger=Trigger.SCHEDULER,
                        started=T0, ended=T0, outcome=Outcome.MISSED,
                        key=key)
                    assert isinstance(run_id, int)
                    run_id = writer.start_run(
                        'app', 'job', trigger=Trigger.SCHEDULER,
                        started=T0, key=f'{key}-started')
                    assert isinstance(run_id, int)
                except (StoreError, RunKeyTaken):
                    pass
                except BaseException as exc:
                    failures.append(exc)
                    break
            written += 1
    finally:
        stop.set()
        thread.join(10)
        writer.close()
        pruner.close()
    assert not failures, failures
    assert written > 10
