"""What coordinating hosts through a shared store costs, and how fast a
standby takes over.

    python benchmarks/bench_coordination.py            # about 6 minutes
    python benchmarks/bench_coordination.py --quick    # about 2 minutes

Run from the repository root: it starts one throwaway PostgreSQL server for
the whole script (``tests.postgresql.Cluster``, on 127.0.0.1) and removes it
at the end. Everything talks over loopback. The machine may be shared and
noisy, so every figure is a median, set against a baseline measured in the
same run.

1. Claim overhead per fire. Three real, unstarted ``Scheduler`` objects,
   built as ``CronApp`` builds them, with no store, an SQLite store and a
   PostgreSQL store. ``Scheduler._fire`` (read the settings, claim the
   occurrence, build the call) is called directly for a per-second job, on
   a fresh block of occurrences each round, so every claim is new; the
   calls are dropped, never made. Rounds alternate between the stores; the
   table gives the median microseconds per fire, the ratio to no store and
   the claim's own cost (the median of the per-round differences to no
   store). Then the same for occurrences another run claimed first (lost:
   the fire stops after the claim).
2. Failover time. Two ``tests/host.py`` processes on one PostgreSQL
   database (``--misfire all``), each with a job due every second that
   logs its runs; the one that ran the newest occurrence is killed with
   SIGKILL at a random moment, and the run log is polled every 20 ms for
   the first run by the other process. (a) Across hosts (different lock
   directories): the standby waits for the lease to expire, so the lease
   time bounds it. (b) On one host (one lock directory): the sibling
   takes the host lock when the kernel drops the dead one's. A fresh
   database and fresh processes per trial; median, min and max.
3. Sustained fires per second. One in-process ``CronApp`` (max_concurrent
   16, no pool limit) served by waitress on 127.0.0.1, with N no-op jobs
   due every second (sharing one ``Schedule`` object), so N fires/s are
   offered, N = 50, 100, 200, 400, 800; after a warm-up, the occurrences
   of an 8 s window are counted: those recorded OK in the store, those
   the job functions ran, each (job, occurrence) exactly once, and the
   lateness (job start minus its due time: the nominal occurrence plus
   the job's jitter). Without jitter all N are due at the same instant
   each second (a burst); with jitter (max_offset 1 s) they are spread
   over the second. SQLite is the baseline, run side by side on a fresh
   file (PostgreSQL on a fresh database) per load; a store's loads stop
   at the knee, the first load of which fewer than 90 % are recorded.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.host and tests.postgresql

import psycopg  # noqa: E402
from waitress import wasyncore  # noqa: E402
from waitress.server import create_server  # noqa: E402
from webob import Request  # noqa: E402

from onecron import CronApp  # noqa: E402
from onecron.job import Job  # noqa: E402
from onecron.running.lock import HostLock, lock_path  # noqa: E402
from onecron.running.scheduler import CLAIM_SETTLE, Scheduler  # noqa: E402
from onecron.schedule.rules import Schedule  # noqa: E402
from onecron.stores.base import Outcome, Store  # noqa: E402
from tests.host import Hosts  # noqa: E402
from tests.postgresql import Cluster  # noqa: E402

APP_ID = 'default'
EVERY_SECOND = '* * * * * *'
#: one schedule shared by the jobs of a load: each per-second cron schedule
#: takes ~10 ms and ~3 MB to build (its table of the day's 86,400 fires)
PER_SECOND = Schedule(EVERY_SECOND)


@dataclass(frozen=True)
class Settings:
    """How long each measurement runs; ``--quick`` shortens all three."""

    claim_rounds: int = 21
    fires_per_round: int = 300
    failover_trials: int = 10
    lease_time: float = 5.0
    loads: tuple[int, ...] = (50, 100, 200, 400, 800)
    warm_up: float = 1.0
    window: int = 8

    @classmethod
    def quick(cls, lease_time: float) -> Settings:
        return cls(claim_rounds=7, fires_per_round=150, failover_trials=3,
                   lease_time=lease_time, loads=(50, 200, 800), window=4)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


@contextlib.contextmanager
def postgresql_database(cluster: Cluster) -> Iterator[str]:
    """The URL of a new, empty database, dropped afterwards."""
    name = cluster.create_database()
    try:
        yield cluster.url(name)
    finally:
        cluster.drop_database(name)


@contextlib.contextmanager
def served(app: Any, threads: int) -> Iterator[str]:
    """Serve ``app`` with waitress on 127.0.0.1; close it afterwards."""
    server = create_server(app, host='127.0.0.1', port=0, threads=threads)
    closing = threading.Event()

    def run() -> None:
        try:
            server.run()
        except OSError:
            if not closing.is_set():  # closing pulls the sockets away
                raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.effective_port}'
    finally:
        closing.set()
        server.task_dispatcher.shutdown()
        wasyncore.close_all(server._map)
        thread.join(5)


# -- 1. claim overhead per fire ------------------------------------------


def idle_scheduler(app: CronApp, lock_dir: str) -> Scheduler:
    """A scheduler built as ``Schedulers.scheduler_for`` builds one, but not
    started: no thread, no lock, no lease, no housekeeping; ``_fire`` is
    called by hand."""
    scheduler = Scheduler(
        APP_ID, 'http://127.0.0.1:9', clockwork=app._hosting.clockwork,
        jobs=app.jobs, url_for=app._fire_url,
        lock=HostLock(lock_path(lock_dir, APP_ID)),
        pool=app.pool_for(APP_ID), reporter=app.reporter,
        history=app.history, clock=app.clock,
        trigger_timeout=app.trigger_timeout, notify=app.operations.notify,
        lease_time=app.lease_time, holder=app._hosting.holder)
    # as if it had taken the lock and the lease: it fires
    scheduler.active_since = app.clock()
    return scheduler


def us_per_fire(scheduler: Scheduler, runtimes: list[datetime],
                runs: bool) -> float:
    """Microseconds per ``_fire`` of the per-second job at ``runtimes``;
    whether each ran (the claim won) is checked, and the calls dropped."""
    job = scheduler._jobs['tick']
    started = time.perf_counter()
    for runtime in runtimes:
        scheduler._fire(job, runtime)
    elapsed = time.perf_counter() - started
    assert len(scheduler._due) == (len(runtimes) if runs else 0), \
        f'{len(scheduler._due)} of {len(runtimes)} fires ran'
    scheduler._due.clear()
    scheduler._fired.clear()
    return elapsed / len(runtimes) * 1e6


def claim_overhead(postgresql_url: str, settings: Settings) -> None:
    rounds, count = settings.claim_rounds, settings.fires_per_round
    print(f'1. Claim overhead per fire: Scheduler._fire called directly, '
          f'{rounds} interleaved rounds x {count} fires, wall time, '
          f'medians\n')
    with tempfile.TemporaryDirectory(prefix='onecron-claims-') as directory:
        targets: dict[str, str | None] = {
            'no store': None,
            'SQLite': str(Path(directory) / 'runs.db'),
            'PostgreSQL': postgresql_url}
        apps = {label: CronApp(secret='bench', enabled=False, store=target,
                               lock_dir=directory)
                for label, target in targets.items()}
        schedulers = {}
        for label, app in apps.items():
            app.cronjob(EVERY_SECOND, name='tick', jitter=False)(
                lambda request: None)
            schedulers[label] = idle_scheduler(app, directory)
        stores = {label: app.store for label, app in apps.items()
                  if app.store is not None}
        won: dict[str, list[float]] = {label: [] for label in apps}
        lost: dict[str, list[float]] = {label: [] for label in stores}
        start = datetime(2031, 1, 1, tzinfo=timezone.utc)
        for number in range(rounds + 1):  # round 0 warms up
            block = [start + timedelta(seconds=second) for second in range(
                2 * number * count, (2 * number + 1) * count)]
            taken = [moment + timedelta(seconds=count) for moment in block]
            labels = list(apps)
            labels = labels[number % 3:] + labels[:number % 3]
            for label in labels:
                value = us_per_fire(schedulers[label], block, runs=True)
                if number:
                    won[label].append(value)
            for label, store in stores.items():
                for moment in taken:  # another run got there first
                    assert store.claim(APP_ID, 'tick', moment, key='rival',
                                       now=moment)
                value = us_per_fire(schedulers[label], taken, runs=False)
                if number:
                    lost[label].append(value)
        for store in stores.values():
            store.close()
    base = statistics.median(won['no store'])
    print(f'{"":<12} {"us/fire":>9} {"ratio":>7} {"claim us":>9}   '
          f'{"lost claim: us/fire":>20}')
    for label, values in won.items():
        median = statistics.median(values)
        claim = statistics.median(
            value - floor for value, floor in zip(values, won['no store']))
        lost_text = (f'{statistics.median(lost[label]):>20.1f}'
                     if label in lost else f'{"-":>20}')
        claim_text = f'{claim:>9.1f}' if label != 'no store' else f'{"-":>9}'
        print(f'{label:<12} {median:>9.1f} {median / base:>6.2f}x '
              f'{claim_text}   {lost_text}')
    print('\n(claim us: median over rounds of the store minus no store; a '
          'lost claim is the insert\nthat finds the occurrence taken plus '
          'the read of who holds it)\n')


# -- 2. failover time ----------------------------------------------------


#: a trial that takes longer than this is cut short (its hosts killed)
TRIAL_LIMIT = 60.0


def first_other_run(run_log: Path, offset: int, victim: int,
                    deadline: float) -> float | None:
    """``time.monotonic()`` when the run log first shows, after byte
    ``offset``, a run by a process other than ``victim``; None if it does
    not by ``deadline``. Polled every 20 ms."""
    while time.monotonic() < deadline:
        with open(run_log, 'rb') as log:
            log.seek(offset)
            lines = log.read().split(b'\n')[:-1]  # whole lines only
        if any(int(line.split()[0]) != victim for line in lines):
            return time.monotonic()
        time.sleep(0.02)
    return None


@dataclass(frozen=True)
class Failover:
    seconds: float | None  # None: no takeover within the limit
    twice: int  # occurrences run more than once
    lost: int  # occurrences between the first and last run that never ran


def failover_trial(cluster: Cluster, across_hosts: bool, lease_time: float,
                   chance: random.Random) -> Failover:
    """One trial: start two processes, kill the active one, time the other's
    first run, then check the run log for occurrences run twice or lost."""
    with postgresql_database(cluster) as url, tempfile.TemporaryDirectory(
            prefix='onecron-failover-') as directory:
        root = Path(directory)
        hosts = Hosts(root, root / 'runs.log')
        options = ('--store', url, '--lease-time', str(lease_time),
                   '--misfire', 'all')
        # a host that hangs is killed, which also ends a wait for it
        watchdog = threading.Timer(TRIAL_LIMIT, hosts.kill_all)
        watchdog.start()
        try:
            first = hosts.start(root / 'host-a', *options)
            second = hosts.start(
                root / ('host-b' if across_hosts else 'host-a'), *options)
            deadline = time.monotonic() + 20
            while len(hosts.runs()) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            # any moment in the lease's renewal cycle and the second
            time.sleep(chance.uniform(0.0, 2.0))
            victim = max(hosts.runs(), key=lambda run: run[1])[0]
            offset = hosts.run_log.stat().st_size
            killed = time.monotonic()
            hosts.kill(first if first.pid == victim else second)
            ran = first_other_run(hosts.run_log, offset, victim,
                                  killed + lease_time + 15)
            # the replays of the missed occurrences end, and of claims
            # whose run never started, looked at again CLAIM_SETTLE after
            # the takeover
            time.sleep(1.5 + CLAIM_SETTLE.total_seconds())
        finally:
            watchdog.cancel()
            hosts.kill_all()
        runs = hosts.runs()
    counts = Counter(occurrence for _, occurrence in runs)
    moments = sorted(datetime.fromisoformat(moment) for moment in counts)
    span = int((moments[-1] - moments[0]).total_seconds()) + 1
    return Failover(None if ran is None else ran - killed,
                    sum(count - 1 for count in counts.values()),
                    span - len(moments))


def failover(cluster: Cluster, settings: Settings) -> None:
    lease = settings.lease_time
    trials = settings.failover_trials
    print(f'2. Failover time: kill -9 of the active process to the first '
          f'run by another, {trials} trials each\n   (tests/host.py '
          f'processes on PostgreSQL, --misfire all, --lease-time '
          f'{lease:g}; the lease time is\n   CronApp(lease_time=...), '
          f'30 s by default, and bounds a takeover across hosts)\n')
    chance = random.Random(20240611)
    print(f'{"":<34} {"median":>7} {"min":>7} {"max":>7}   '
          f'{"run twice":>9} {"lost":>5}')
    for label, across in ((f'(a) across hosts, lease {lease:g} s', True),
                          ('(b) one host, two processes', False)):
        results = [failover_trial(cluster, across, lease, chance)
                   for _ in range(trials)]
        times = [result.seconds for result in results
                 if result.seconds is not None]
        twice = sum(result.twice for result in results)
        lost = sum(result.lost for result in results)
        if times:
            print(f'{label:<34} {statistics.median(times):>6.2f}s '
                  f'{min(times):>6.2f}s {max(times):>6.2f}s   '
                  f'{twice:>9} {lost:>5}')
        failed = len(results) - len(times)
        if failed:
            print(f'{"":<34} {failed} trial(s): no takeover within '
                  f'{lease + 15:g} s')
    print('\n(times are +-20 ms, the run log\'s polling; "run twice" and '
          '"lost" count occurrences over all\ntrials: lost means claimed by '
          'the killed process, which died before running it)\n')


# -- 3. sustained fires per second ---------------------------------------


@dataclass(frozen=True)
class Load:
    """What one offered load achieved over the window."""

    offered: int
    window: int
    recorded: int  # runs recorded OK in the store
    ran: int  # runs the job functions executed
    twice: int  # (job, occurrence) pairs run more than once
    missing: int  # (job, occurrence) pairs never run
    lateness: list[float]  # seconds, per run

    @property
    def recorded_rate(self) -> float:
        return self.recorded / self.window

    @property
    def ran_rate(self) -> float:
        return self.ran / self.window


Stored = tuple[str, datetime | None, Outcome | None]


def stored_runs(store: Store) -> list[Stored]:
    """(job, occurrence, outcome) of every run in ``store``."""
    found: list[Stored] = []
    before: int | None = None
    for _ in range(1000):  # pages; far more than any load writes
        page = store.runs(APP_ID, limit=1000, before_id=before)
        found.extend((run.job, run.scheduled, run.outcome) for run in page)
        if len(page) < 1000:
            break
        before = page[-1].id
    return found


def sustained_load(target: str, jobs: int, jitter: bool, lock_dir: str,
                   settings: Settings) -> Load:
    """Run ``jobs`` per-second jobs on ``target``; count the window's."""
    app = CronApp(secret='bench', lock_dir=lock_dir, store=target,
                  max_concurrent=16, pool_size=None, max_offset=1.0)
    offsets: dict[str, float] = {}
    runs: list[tuple[str, float, float]] = []  # job, occurrence, lateness

    def job_for(name: str) -> Callable[[Request], None]:
        def job(request: Request) -> None:
            started = time.time()
            occurrence = datetime.fromisoformat(
                request.headers['X-Onecron-Occurrence']).timestamp()
            runs.append((name, occurrence,
                         started - occurrence - offsets[name]))
        return job

    for number in range(jobs):
        name = f'job{number:03d}'
        app.add_job(Job(name, job_for(name), PER_SECOND, jitter=jitter,
                        max_offset=app.max_offset, misfire=app.misfire,
                        grace=app.grace))
        offsets[name] = app.jobs[name].offset_for(APP_ID)
    store = app.store
    assert store is not None
    try:
        with served(app, threads=16) as url:
            app.start(base_url=url)
            # the window: whole seconds of nominal occurrences
            first = int(time.time() + settings.warm_up) + 1
            last = first + settings.window
            # the last of them are due up to max_offset later: wait for
            # all, or for two more seconds
            due = last + (app.max_offset if jitter else 0.0)
            while time.time() < due + 2.0 and (time.time() < due or sum(
                    first <= occurrence < last
                    for _, occurrence, _ in runs) < jobs * settings.window):
                time.sleep(0.05)
            app.stop()
        begin = datetime.fromtimestamp(first, timezone.utc)
        end = datetime.fromtimestamp(last, timezone.utc)
        recorded = sum(1 for _, scheduled, outcome in stored_runs(store)
                       if scheduled is not None and begin <= scheduled < end
                       and outcome is Outcome.OK)
    finally:
        store.close()
        app.stop()  # idempotent; closes the job lock files too
    inside = [(name, occurrence, late) for name, occurrence, late in runs
              if first <= occurrence < last]
    counts = Counter((name, occurrence) for name, occurrence, _ in inside)
    return Load(jobs, settings.window, recorded, len(inside),
                sum(count - 1 for count in counts.values()),
                jobs * settings.window - len(counts),
                [late for _, _, late in inside])


def measure_load(cluster: Cluster, label: str, offered: int, jitter: bool,
                 settings: Settings) -> Load:
    """One offered load on a fresh SQLite file or PostgreSQL database."""
    with tempfile.TemporaryDirectory(prefix='onecron-sustained-') as directory:
        if label == 'SQLite':
            return sustained_load(str(Path(directory) / 'runs.db'), offered,
                                  jitter, directory, settings)
        with postgresql_database(cluster) as url:
            return sustained_load(url, offered, jitter, directory, settings)


def sustained(cluster: Cluster, settings: Settings) -> None:
    print(f'3. Sustained fires per second: one scheduler, N jobs due every '
          f'second, {settings.window} s window\n   after a '
          f'{settings.warm_up:g} s warm-up; waitress 16 threads, '
          f'max_concurrent 16, no pool limit;\n   lateness = job start - '
          f'(occurrence + jitter); SQLite is the baseline\n')
    header = (f'{"offered/s":>9}  {"store":<10} {"stored/s":>8} '
              f'{"ran/s":>7} {"median ms":>9} {"p99 ms":>8} '
              f'{"median/SQLite":>13} {"once":>5}')
    for jitter, title in ((False, 'burst: jitter=False, all N due at the '
                           'same instant'),
                          (True, 'spread: jitter=True, max_offset 1 s')):
        print(f'{title}\n{header}')
        # per store: the highest load sustained, the first that was not
        sustained_up_to = {'SQLite': 0, 'PostgreSQL': 0}
        knees: dict[str, int] = {}
        for offered in settings.loads:
            baseline: float | None = None
            for label in sustained_up_to:
                if label in knees:
                    continue
                load = measure_load(cluster, label, offered, jitter, settings)
                print(load_row(label, load, baseline))
                if label == 'SQLite' and load.lateness:
                    baseline = statistics.median(load.lateness)
                if load.recorded_rate < 0.9 * offered:
                    knees[label] = offered
                else:
                    sustained_up_to[label] = offered
        for label, up_to in sustained_up_to.items():
            print(f'  {label}: sustained {up_to}/s' + (
                f', not {knees[label]}/s (< 90 % recorded)'
                if label in knees else ', no knee within these loads'))
        print()


def load_row(label: str, load: Load, baseline: float | None) -> str:
    if load.lateness:
        median = statistics.median(load.lateness)
        lateness = (f'{median * 1e3:>9.1f} '
                    f'{percentile(load.lateness, 0.99) * 1e3:>8.1f}')
        ratio = (f'{median / baseline:>12.2f}x' if baseline else
                 f'{"-":>13}')
    else:
        lateness, ratio = f'{"-":>9} {"-":>8}', f'{"-":>13}'
    once = 'yes' if not load.twice and not load.missing else (
        f'{load.twice} twice, {load.missing} missing')
    return (f'{load.offered:>9}  {label:<10} {load.recorded_rate:>8.1f} '
            f'{load.ran_rate:>7.1f} {lateness} {ratio} {once:>5}')


# -- the script ------------------------------------------------------------


def versions(cluster: Cluster) -> str:
    with cluster.admin() as db:
        row = db.execute('SHOW server_version').fetchone()
    server = row[0].split()[0] if row else '?'
    return (f'Python {platform.python_version()} on {platform.machine()} '
            f'({os.cpu_count()} CPUs), SQLite {sqlite3.sqlite_version}, '
            f'PostgreSQL {server} (psycopg {psycopg.__version__}), all on '
            f'127.0.0.1')


def main() -> None:
    parser = argparse.ArgumentParser(
        description='Claim overhead, failover time and sustained fires per '
        'second with the SQLite and PostgreSQL stores.')
    parser.add_argument('--quick', action='store_true',
                        help='fewer rounds, 3 failover trials, shorter '
                        'windows')
    parser.add_argument('--lease-time', type=float, default=5.0,
                        help='the lease time of the failover hosts '
                        '(default 5 s)')
    options = parser.parse_args()
    settings = (Settings.quick(options.lease_time) if options.quick
                else Settings(lease_time=options.lease_time))
    print(f'$ python {" ".join(sys.argv)}')
    began = time.monotonic()
    cluster = Cluster()
    try:
        print(f'{versions(cluster)}\n')
        with postgresql_database(cluster) as url:
            claim_overhead(url, settings)
        failover(cluster, settings)
        sustained(cluster, settings)
    finally:
        cluster.remove()
    print(f'({time.monotonic() - began:.0f} s in all)')


if __name__ == '__main__':
    main()
