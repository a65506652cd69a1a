"""How fast is ``Schedule.next_after`` next to croniter and cronsim?

Run it as it is::

    python benchmarks/bench_schedule.py

For each expression and zone, three measurements, each the median of five
runs:

* **next**: N successive fires from the same start, one object per
  library per run (croniter ``get_next(datetime)`` on one iterator, cronsim
  ``next()`` on one iterator, onecron ``s = schedule.next_after(s)``), in
  microseconds per fire. Every run builds new objects, so onecron's
  per-schedule memo tables start empty; what onecron learnt about a zone's
  UTC offsets is shared by all schedules in that zone, as in a real process.
* **cold**: the first fire after random instants between 1990 and 2040
  (new instants in each run): a fresh croniter or cronsim object for each,
  one ``next_after`` call on an existing onecron ``Schedule``.
* **ratio**: the faster peer's time divided by onecron's.

Then the cost of a schedule by how often it fires, per second, per minute
and hourly, in each zone: **build**, the median microseconds of
``COST_BUILDS`` builds, each parsing its text afresh (the parse cache is
emptied, the zone's shared offset tables are warm); **memory**, the bytes
tracemalloc sees allocated and still held once a schedule is built (the
median of ``COST_SAMPLES`` builds), and after ``COST_FIRES`` successive
fires from 2024-01-01, when its memo tables have grown. The last row
divides per second by hourly: a schedule's cost should not grow with its
frequency (at most 3x). ``--cost`` runs this part alone.

On the fly, the fires of onecron and cronsim are compared; none of these
cases touches a DST gap or repeated hour, so they must agree. The whole run
takes well under a minute.
"""

from __future__ import annotations

import gc
import platform
import random
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]
from cronsim import CronSim

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from onecron.schedule import cron as onecron_cron  # noqa: E402
from onecron.schedule import days as onecron_calendar  # noqa: E402
from onecron.schedule.rules import Schedule  # noqa: E402

EXPRESSIONS = ['*/5 * * * *', '30 8 * * *', '0 0 1 * *',
               '15 9-17 * * MON-FRI', '0 0 * * 1#2', '0 12 L * *']
ZONES = ['UTC', 'Europe/Zurich', 'America/New_York']
FIRES = 400  # successive fires per run
STARTS = 200  # random instants per cold run
RUNS = 5
COST_EXPRESSIONS = [('per second', '* * * * * *'),
                    ('per minute', '* * * * *'), ('hourly', '0 * * * *')]
COST_ZONES = ['UTC', 'Europe/Zurich']
COST_BUILDS = 200  # builds timed per schedule and zone
COST_SAMPLES = 5  # builds measured with tracemalloc
COST_FIRES = 1000  # fires before the second memory reading


def iterate_onecron(expr: str, start: datetime) -> list[datetime]:
    schedule = Schedule(expr, timezone=str(start.tzinfo))
    found = []
    when = start
    for _ in range(FIRES):
        when = schedule.next_after(when)
        found.append(when)
    return found


def iterate_croniter(expr: str, start: datetime) -> list[datetime]:
    iterator = croniter(expr, start)
    return [iterator.get_next(datetime) for _ in range(FIRES)]


def iterate_cronsim(expr: str, start: datetime) -> list[datetime]:
    iterator = CronSim(expr, start)
    return [next(iterator) for _ in range(FIRES)]


def cold_onecron(expr: str, starts: list[datetime]) -> list[datetime]:
    schedule = Schedule(expr, timezone=str(starts[0].tzinfo))
    return [schedule.next_after(start) for start in starts]


def cold_croniter(expr: str, starts: list[datetime]) -> list[datetime]:
    return [croniter(expr, start).get_next(datetime) for start in starts]


def cold_cronsim(expr: str, starts: list[datetime]) -> list[datetime]:
    return [next(CronSim(expr, start)) for start in starts]


def timed(func: Callable[[], list[datetime]],
          count: int) -> tuple[float, list[datetime]]:
    """Microseconds per item of one call, and its result."""
    began = time.perf_counter()
    result = func()
    return (time.perf_counter() - began) / count * 1e6, result


def random_starts(zone: str, seed: int) -> list[datetime]:
    rng = random.Random(seed)
    low = datetime(1990, 1, 1).timestamp()
    high = datetime(2040, 1, 1).timestamp()
    tz = ZoneInfo(zone)
    return [datetime.fromtimestamp(int(rng.uniform(low, high)), tz)
            for _ in range(STARTS)]


def check(expr: str, zone: str, ours: list[datetime],
          theirs: list[datetime]) -> None:
    """Stop the run if onecron and cronsim disagree."""
    for mine, other in zip(ours, theirs):
        if mine != other or mine.utcoffset() != other.utcoffset():
            sys.exit(f'onecron and cronsim disagree on {expr!r} in {zone}: '
                     f'{mine.isoformat()} != {other.isoformat()}')


def measure(expr: str, zone: str) -> dict[str, float]:
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo(zone))
    times: dict[str, list[float]] = {}
    for run in range(RUNS):
        for name, func in [('onecron', iterate_onecron),
                           ('croniter', iterate_croniter),
                           ('cronsim', iterate_cronsim)]:
            elapsed, fires = timed(lambda: func(expr, start),  # noqa: B023
                                   FIRES)  # called at once
            times.setdefault(name, []).append(elapsed)
            if name == 'onecron':
                ours = fires
            elif name == 'cronsim':
                check(expr, zone, ours, fires)
        starts = random_starts(zone, seed=run)
        for name, cold in [('onecron', cold_onecron),
                           ('croniter', cold_croniter),
                           ('cronsim', cold_cronsim)]:
            elapsed, fires = timed(lambda: cold(expr, starts),  # noqa: B023
                                   STARTS)  # called at once
            times.setdefault(f'cold {name}', []).append(elapsed)
            if name == 'onecron':
                ours = fires
            elif name == 'cronsim':
                check(expr, zone, ours, fires)
    return {name: statistics.median(values)
            for name, values in times.items()}


def build_times() -> dict[str, float]:
    """Median microseconds to build a schedule or iterator."""
    builders: dict[str, Callable[[str, datetime], object]] = {
        'onecron': lambda expr, start: Schedule(expr,
                                                timezone=str(start.tzinfo)),
        'croniter': croniter,
        'cronsim': CronSim,
    }
    times: dict[str, list[float]] = {name: [] for name in builders}
    for expr in EXPRESSIONS:
        for zone in ZONES:
            start = datetime(2024, 1, 1, tzinfo=ZoneInfo(zone))
            for name, build in builders.items():
                began = time.perf_counter()
                for _ in range(20):
                    build(expr, start)
                times[name].append((time.perf_counter() - began) / 20 * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def _forget_parses() -> None:
    """Empty the caches of parsed expressions (and their times of the day,
    where there is one), so the next build starts from the text."""
    for cached in (getattr(onecron_cron, '_parse', None),
                   getattr(onecron_calendar, 'day_times', None)):
        cache_clear = getattr(cached, 'cache_clear', None)
        if cache_clear is not None:
            cache_clear()


def build_micros(zone: str) -> dict[str, float]:
    """Median microseconds to build each of ``COST_EXPRESSIONS``, parse
    included; builds of the expressions take turns, so a busy machine
    slows them alike."""
    times: dict[str, list[float]] = {expr: [] for _, expr in COST_EXPRESSIONS}
    for _ in range(COST_BUILDS):
        for expr, found in times.items():
            _forget_parses()
            began = time.perf_counter()
            Schedule(expr, timezone=zone)
            found.append((time.perf_counter() - began) * 1e6)
    return {expr: statistics.median(found) for expr, found in times.items()}


def held_bytes(expr: str, zone: str) -> tuple[int, int]:
    """Median bytes a new schedule holds once built, and after
    ``COST_FIRES`` fires."""
    built, used = [], []
    start = datetime(2024, 1, 1, tzinfo=ZoneInfo(zone))
    for _ in range(COST_SAMPLES):
        _forget_parses()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        schedule = Schedule(expr, timezone=zone)
        built.append(tracemalloc.get_traced_memory()[0] - before)
        when = start
        for _ in range(COST_FIRES):
            when = schedule.next_after(when)
        del when
        gc.collect()
        used.append(tracemalloc.get_traced_memory()[0] - before)
        tracemalloc.stop()
        del schedule
    return int(statistics.median(built)), int(statistics.median(used))


def cost_table() -> None:
    """Build time and memory by frequency, and per second / hourly."""
    print(f'cost of a schedule: build = median of {COST_BUILDS} builds, '
          f'each parsing its text; memory = bytes held (tracemalloc) once '
          f'built and after {COST_FIRES} fires')
    header = (f'{"schedule":<12}{"expression":<14}{"zone":<15}'
              f'{"build us":>10}{"memory B":>11}{"used B":>10}')
    print(header)
    print('-' * len(header))
    for zone in COST_ZONES:
        Schedule('@hourly', timezone=zone)  # the zone's shared tables
        found = {}
        builds = build_micros(zone)
        for name, expr in COST_EXPRESSIONS:
            micros = builds[expr]
            built, used = held_bytes(expr, zone)
            found[name] = (micros, built, used)
            print(f'{name:<12}{expr:<14}{zone:<15}{micros:>10.1f}'
                  f'{built:>11,}{used:>10,}', flush=True)
        second, hourly = found['per second'], found['hourly']
        ratios = [a / b for a, b in zip(second, hourly)]
        print(f'{"per second / hourly (judge: at most 3x)":<41}'
              f'{ratios[0]:>9.1f}x{ratios[1]:>10.1f}x{ratios[2]:>9.1f}x')
        print('-' * len(header))


def main() -> None:
    print(f'$ python {" ".join(sys.argv)}')
    print(f'Python {platform.python_version()} '
          f'({platform.python_implementation()}) on {platform.machine()} '
          f'{platform.system()}')
    if '--cost' in sys.argv[1:]:
        cost_table()
        return
    print(f'median of {RUNS} runs; next: {FIRES} successive fires from '
          f'2024-01-01; cold: {STARTS} random starts; times in us\n')
    header = (f'{"expression":<21} {"zone":<17}'
              f'{"onecron":>8} {"croniter":>8} {"cronsim":>8} {"ratio":>6}'
              f'   {"cold:":<5}{"onecron":>8} {"croniter":>8} {"cronsim":>8}'
              f' {"ratio":>6}')
    print(header)
    print('-' * len(header))
    ratios: list[float] = []
    cold_ratios: list[float] = []
    began = time.perf_counter()
    for expr in EXPRESSIONS:
        for zone in ZONES:
            m = measure(expr, zone)
            ratio = min(m['croniter'], m['cronsim']) / m['onecron']
            cold_ratio = (min(m['cold croniter'], m['cold cronsim'])
                          / m['cold onecron'])
            ratios.append(ratio)
            cold_ratios.append(cold_ratio)
            print(f'{expr:<21} {zone:<17}'
                  f'{m["onecron"]:>8.2f} {m["croniter"]:>8.1f} '
                  f'{m["cronsim"]:>8.1f} {ratio:>5.1f}x'
                  f'   {"":<5}{m["cold onecron"]:>8.2f} '
                  f'{m["cold croniter"]:>8.1f} {m["cold cronsim"]:>8.1f} '
                  f'{cold_ratio:>5.1f}x', flush=True)
    print('-' * len(header))
    print(f'{"geometric mean of ratios":<38}{"":>26}'
          f'{statistics.geometric_mean(ratios):>6.1f}x   {"":<5}'
          f'{"":>26} {statistics.geometric_mean(cold_ratios):>5.1f}x')
    print('\nbuilding one object (median us, all expressions and zones): '
          + ', '.join(f'{name} {value:.0f}'
                      for name, value in build_times().items()))
    print(f'onecron and cronsim agreed on every fire; '
          f'{time.perf_counter() - began:.0f} s in all\n')
    cost_table()


if __name__ == '__main__':
    main()
