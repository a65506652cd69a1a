"""A thousand tenants in one process: threads, memory, idle CPU, spread.

    python benchmarks/bench_tenants.py [--idle SECONDS] [--quick]

1. For 10, 100 and 1,000 application ids with 20 jobs each, all started
   and active, nothing due: the process's threads, the resident memory
   onecron adds (against the same process before the CronApp was built),
   and the CPU time used while idle over ``--idle`` seconds (default 60),
   as a share of one core; also with an SQLite store, whose housekeeping
   round (switches, leases, heartbeats) runs every two seconds. Next to
   it, the same tenants with one thread per application id, as the model
   ran them (a thread holding its lock file and sleeping in its own
   ``sched`` queue). Each row is measured in a fresh process.
2. The spread of 1,000 tenants' ``@hourly`` job over the offset window:
   the busiest second against the fair share (1,000 / ``max_offset``).
3. Registering and scheduling 2,000 against 20,000 jobs (100 and 1,000
   tenants of 20 jobs), same run: the time ratio (linear would be 10x).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TENANTS = (10, 100, 1000)
JOBS = 20

# one row, measured in a process of its own; prints a JSON line
CHILD = r'''
import json, os, resource, sched, sys, threading, time, fcntl
sys.path.insert(0, {root!r})

def rss_kib():
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])

def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime

kind, tenants, jobs, idle, lock_dir = (
    sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]),
    sys.argv[5])
import onecron  # imports count as the baseline, as in any app
from onecron import CronApp
from onecron.running.lock import lock_path
before = rss_kib()
ids = [f'tenant-{{number}}' for number in range(tenants)]
# yearly, at varied minutes: never due while we watch
expressions = [f'{{minute}} 0 1 1 *' for minute in range(jobs)]
started = time.perf_counter()
if kind in ('onecron', 'store'):
    store = lock_dir + '/runs.sqlite' if kind == 'store' else None
    app = CronApp(secret='s', lock_dir=lock_dir, store=store,
                  base_url='http://127.0.0.1:9')
    for expr in expressions:
        app.cronjob(expr, name=expr)(lambda request: None)
    for tenant in ids:
        app.start(application_id=tenant)
    deadline = time.monotonic() + 60
    while not all(s.active for s in app.schedulers.values()):
        assert time.monotonic() < deadline, 'not all active'
        time.sleep(0.05)
else:
    # the model: a thread per application id, its lock file held, its
    # own sched queue of the jobs' next runs, sleeping until the first
    from onecron import Schedule
    from datetime import datetime, timezone
    schedules = [Schedule(expr) for expr in expressions]
    ready = threading.Barrier(tenants + 1)
    def tenant_thread(tenant):
        lock = open(lock_path(lock_dir, tenant), 'a')
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        queue = sched.scheduler(time.time, time.sleep)
        now = datetime.now(timezone.utc)
        for schedule in schedules:
            queue.enterabs(schedule.next_after(now).timestamp(), 0,
                           lambda: None)
        ready.wait()
        queue.run()
    for tenant in ids:
        threading.Thread(target=tenant_thread, args=(tenant,),
                         daemon=True).start()
    ready.wait()
took = time.perf_counter() - started
time.sleep(1)  # let start-up settle
used = cpu()
time.sleep(idle)
idle_cpu = cpu() - used
print(json.dumps({{
    'threads': threading.active_count(),
    'rss_mib': (rss_kib() - before) / 1024,
    'cpu_share': idle_cpu / idle,
    'start_s': took,
}}))
os._exit(0)
'''

# registering and scheduling, in-process and timed; prints seconds
SCALE = r'''
import sys, time
sys.path.insert(0, {root!r})
from onecron import CronApp
tenants, jobs, lock_dir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
started = time.perf_counter()
app = CronApp(secret='s', lock_dir=lock_dir, base_url='http://127.0.0.1:9')
for number in range(jobs):
    app.cronjob(f'{{number % 60}} {{number % 24}} * * *',
                name=f'job-{{number}}')(lambda request: None)
for tenant in range(tenants):
    app.start(application_id=f'tenant-{{tenant}}')
# the clockwork activates them in the order they were started: when the
# last one is active with its jobs queued, so are all (looking at all of
# them, over and over, would cost more than what is measured)
last = app.schedulers[f'tenant-{{tenants - 1}}']
while not (last.active and len(last.upcoming()) == jobs):
    time.sleep(0.005)
print(time.perf_counter() - started)
import os; os._exit(0)
'''


def run_child(kind: str, tenants: int, idle: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as lock_dir:
        output = subprocess.run(
            [sys.executable, '-c', CHILD.format(root=str(ROOT)), kind,
             str(tenants), str(JOBS), str(idle), lock_dir],
            capture_output=True, text=True, timeout=idle + 180, check=True)
    result: dict[str, float] = json.loads(output.stdout.splitlines()[-1])
    return result


def resources(idle: float) -> None:
    print(f'1. {JOBS} jobs per application id, all started, nothing due; '
          f'idle CPU over {idle:g} s (share of one core)\n')
    print(f'{"ids":>6} {"design":<26} {"threads":>7} {"+RSS MiB":>9} '
          f'{"idle CPU":>9} {"start s":>8}')
    for tenants in TENANTS:
        for kind, label in (('onecron', 'onecron (one scheduler)'),
                            ('store', 'onecron + SQLite store'),
                            ('model', 'a thread per id (model)')):
            row = run_child(kind, tenants, idle)
            print(f'{tenants:>6} {label:<26} {row["threads"]:>7.0f} '
                  f'{row["rss_mib"]:>9.1f} {row["cpu_share"]:>8.2%} '
                  f'{row["start_s"]:>8.2f}')
    print('\n(threads: the whole process, main thread included; onecron '
          'adds its scheduler and caller threads)\n')


def spread() -> None:
    from onecron import CronApp
    print('2. 1,000 tenants, the same @hourly job: fire seconds within the '
          'offset window\n')
    print(f'{"max_offset":>10} {"fair/s":>7} {"busiest/s":>9} '
          f'{"ratio":>6} {"first":>6} {"last":>6}')
    for max_offset in (30, 300):
        app = CronApp(secret='s', enabled=False, max_offset=max_offset)
        app.cronjob('@hourly', name='hourly')(lambda request: None)
        job = app.jobs['hourly']
        offsets = [job.offset_for(f'tenant-{number}')
                   for number in range(1000)]
        seconds = Counter(int(offset) for offset in offsets)
        fair = 1000 / max_offset
        busiest = max(seconds.values())
        print(f'{max_offset:>10} {fair:>7.1f} {busiest:>9} '
              f'{busiest / fair:>5.2f}x {min(offsets):>6.1f} '
              f'{max(offsets):>6.1f}')
    print()


def scaling(rounds: int) -> None:
    print(f'3. registering and scheduling: 100 vs 1,000 tenants x {JOBS} '
          f'jobs (median of {rounds}, each in a fresh process)\n')
    timings: dict[int, list[float]] = {100: [], 1000: []}
    for _ in range(rounds):
        for tenants in timings:
            with tempfile.TemporaryDirectory() as lock_dir:
                output = subprocess.run(
                    [sys.executable, '-c', SCALE.format(root=str(ROOT)),
                     str(tenants), str(JOBS), lock_dir],
                    capture_output=True, text=True, timeout=300, check=True)
            timings[tenants].append(float(output.stdout.split()[-1]))
    small = statistics.median(timings[100])
    large = statistics.median(timings[1000])
    print(f'{"jobs":>7} {"seconds":>8}')
    print(f'{100 * JOBS:>7} {small:>8.3f}')
    print(f'{1000 * JOBS:>7} {large:>8.3f}')
    print(f'\nratio {large / small:.1f}x for 10x the jobs (target: at '
          f'most 12x)\n')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--idle', type=float, default=60.0)
    parser.add_argument('--quick', action='store_true',
                        help='10 s idle windows, one scaling round')
    parser.add_argument('--part', type=int, choices=(1, 2, 3),
                        help='run only this part')
    options = parser.parse_args()
    idle = 10.0 if options.quick else options.idle
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} on {platform.machine()}, '
          f'{os.cpu_count()} cores, open files limit '
          f'{resource.getrlimit(resource.RLIMIT_NOFILE)[0]}\n')
    sys.path.insert(0, str(ROOT))
    if options.part in (None, 1):
        resources(idle)
    if options.part in (None, 2):
        spread()
    if options.part in (None, 3):
        scaling(1 if options.quick else 5)


if __name__ == '__main__':
    main()
