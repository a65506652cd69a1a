"""Jobs: the deterministic jitter and the fire times it shifts."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from onecron import CronApp
from onecron.job import Job, check_job_function
from onecron.schedule.rules import Schedule


def job(name: str = 'pkg.nightly', **options: object) -> Job:
    return Job(name, lambda request: None, Schedule('0 0 * * *'),
               **options)  # type: ignore[arg-type]


def test_offset_is_within_bounds_and_varies() -> None:
    """Offsets lie in [0, max_offset] and differ per job and tenant."""
    offsets = {job(f'job{i}').offset_for(f'tenant{j}')
               for i in range(20) for j in range(20)}
    assert all(0 <= o <= 30 for o in offsets)
    assert len(offsets) == 400
    assert job().offset_for('a') != job().offset_for('b')
    assert job('x').offset_for('a') != job('y').offset_for('a')


def test_offsets_spread_over_the_window() -> None:
    """A thousand tenants' offsets cover the whole window evenly."""
    offsets = [job().offset_for(f'tenant-{i}') for i in range(1000)]
    buckets = [0] * 10
    for offset in offsets:
        buckets[min(int(offset / 3), 9)] += 1
    assert min(buckets) > 60 and max(buckets) < 140


def test_offset_is_the_same_in_every_process() -> None:
    """Another interpreter, with another hash seed, computes the same."""
    code = ('from onecron.job import Job; from onecron.schedule.rules import '
            'Schedule; print(repr(Job("pkg.nightly", print, '
            'Schedule("0 0 * * *")).offset_for("tenant")))')
    outputs = set()
    for seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outputs.add(subprocess.run(
            [sys.executable, '-c', code], env=env, check=True,
            capture_output=True, text=True).stdout.strip())
    assert outputs == {repr(job().offset_for('tenant'))}


def test_no_jitter() -> None:
    """jitter=False or max_offset=0: the offset is 0."""
    assert job(jitter=False).offset_for('a') == 0
    assert job(max_offset=0).offset_for('a') == 0
    assert job(max_offset=5).offset_for('a') <= 5


def test_next_runtime_is_strictly_after() -> None:
    """next_runtime never returns its argument, even on a fire time."""
    nightly = job()
    first = nightly.next_runtime(datetime(2024, 1, 1, tzinfo=timezone.utc))
    second = nightly.next_runtime(first)
    assert second - first == timedelta(days=1)
    just_before = nightly.next_runtime(first - timedelta(microseconds=1))
    assert just_before == first


def test_offset_is_added_in_elapsed_time_across_fall_back() -> None:
    """A fire in a repeated hour keeps its pass when the offset is added."""
    from zoneinfo import ZoneInfo
    zurich = ZoneInfo('Europe/Zurich')
    hourly = Job('pkg.hourly', lambda request: None,
                 Schedule('0 * * * *', timezone='Europe/Zurich'),
                 max_offset=30.0)
    offset = timedelta(seconds=hourly.offset_for('tenant'))
    # 2024-10-27: 02:00 CEST becomes 02:00 CET, so 02:00 happens twice
    first_two = datetime(2024, 10, 27, 0, 0, tzinfo=timezone.utc)  # 02:00 CEST
    runtimes = [hourly.next_runtime(first_two - timedelta(minutes=1),
                                    'tenant')]
    for _ in range(2):
        runtimes.append(hourly.next_runtime(runtimes[-1], 'tenant'))
    utc = [runtime.astimezone(timezone.utc) for runtime in runtimes]
    assert utc == [first_two + offset + timedelta(hours=h) for h in range(3)]
    assert [r.fold for r in runtimes] == [0, 1, 0]
    assert all(r.tzinfo is zurich for r in runtimes)
    assert hourly.occurrence_of(runtimes[1], 'tenant').astimezone(
        timezone.utc) == first_two + timedelta(hours=1)


def test_jitter_spreads_a_thousand_tenants_over_the_window() -> None:
    """1,000 tenants' @hourly job (default max_offset 30 s) fire across the
    whole window, no second holding more than twice its fair share."""
    from collections import Counter
    job = Job('hourly', lambda request: None, Schedule('@hourly'),
              max_offset=30)
    offsets = [job.offset_for(f'tenant-{number}') for number in range(1000)]
    seconds = Counter(int(offset) for offset in offsets)
    assert set(seconds) == set(range(30)), 'every second of the window'
    assert max(seconds.values()) <= 2 * 1000 / 30


# --- the job function's signature -------------------------------------------


def test_job_without_a_request_parameter_fails_at_registration() -> None:
    """``def job():`` raises TypeError naming the job and its function at
    ``@app.cronjob(...)``, instead of failing at every run."""
    app = CronApp(secret='s', enabled=False)
    with pytest.raises(TypeError, match=r"'tests\.test_job\..*nightly'.*"
                       r"nightly\(\).*request"):
        @app.cronjob('0 3 * * *')
        def nightly() -> None:
            pass
    assert not app.jobs


@pytest.mark.parametrize('signature', [
    'request, other', '*, request', 'request, /, other, *, more',
])
def test_job_needing_more_than_the_request_fails(signature: str) -> None:
    """A function that needs another argument, or takes the request by
    keyword only, is refused with its signature in the message."""
    namespace: dict[str, Any] = {}
    exec(f'def tidy({signature}): pass', namespace)
    app = CronApp(secret='s', enabled=False)
    with pytest.raises(TypeError, match=r'tidy\(.*\) cannot be called'):
        app.cronjob('@daily', name='tidy')(namespace['tidy'])
    with pytest.raises(TypeError, match='tidy'):
        app.add_job(Job('tidy', namespace['tidy'], None))


class Handler:
    def __call__(self, request: Any) -> None:
        pass


def with_extra(request: Any, extra: int = 1) -> None:
    pass


def two(first: Any, request: Any) -> None:
    pass


@pytest.mark.parametrize('func', [
    lambda request: None,
    with_extra,
    lambda *args: None,
    lambda *args, **kwargs: None,
    lambda request=None: None,
    Handler(),
    functools.partial(two, 'first'),
    functools.partial(with_extra, extra=2),
    print,
    max,  # no signature to read: accepted
], ids=['request', 'request-extra', 'args', 'args-kwargs', 'default',
        'call', 'partial', 'partial-keyword', 'print', 'max'])
def test_functions_taking_the_request_register(func: Any) -> None:
    """Anything callable with the request as its one positional argument
    registers, and callables without a readable signature too."""
    app = CronApp(secret='s', enabled=False)
    app.cronjob('@daily', name='job')(func)
    assert app.jobs['job'].func is func


def test_signature_check_can_be_left_to_a_wrapper() -> None:
    """``check_signature=False`` registers a function with its own calling
    convention; check_job_function is there for the wrapper's own check."""
    def bare() -> None:
        pass

    func: Any = bare
    assert Job('bare', func, None, check_signature=False).func is func
    check_job_function(lambda request: None, 'fine')
    with pytest.raises(TypeError, match="job 'bare'"):
        check_job_function(bare, 'bare')
