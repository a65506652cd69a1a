"""A registered job: its function, its schedule and its jitter.

The jitter moves each fire of a job by an offset that depends only on the
job's name and the application id, so tenants' jobs due at the same time
are spread over a window of ``max_offset`` seconds. The window is never
more than :data:`GAP_SHARE` of the shortest gap between two fires of the
schedule in force (:attr:`~onecron.schedule.Schedule.shortest_gap`): a
fire always comes before the next occurrence is due, and is never nearer
the next occurrence than its own. With the default 30 s a job every ten
seconds is spread over 5 s, an hourly one over the whole 30 s.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol, TypeVar

from onecron.schedule.rules import Schedule
from onecron.stores.base import JobSettings, Store

T = TypeVar('T')

JobFunction = Callable[[Any], Any]

#: the largest share of the schedule's shortest gap an offset may take:
#: with a half, a fire is at least as near its own occurrence as the next
#: one (half the gap is left before the next is due), while an every-ten-
#: seconds job keeps a 5 s window to spread tenants over. The offset is
#: constant, so fires stay a whole gap apart whatever the share.
GAP_SHARE = 0.5


def _unit_interval(*parts: str) -> float:
    """A number in [0, 1] that depends only on ``parts``.

    Hash-seed and process independent (unlike :func:`hash`), so every process
    on every host computes the same jitter for the same job and tenant.
    """
    digest = hashlib.blake2b(
        '\x00'.join(parts).encode('utf-8'), digest_size=8).digest()
    return int.from_bytes(digest, 'big') / 0xFFFF_FFFF_FFFF_FFFF


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError(f'an aware datetime is needed, got the naive '
                         f'{moment!r}')
    return moment.astimezone(timezone.utc)


#: what ``overlap=`` accepts: a trigger while the job runs is refused (409),
#: runs beside it, or waits for it to end
OVERLAP = ('skip', 'allow', 'wait')
#: what ``notify=`` accepts: when a run is mailed
NOTIFY = ('failure', 'always', 'never')

ShouldRun = Callable[[str], bool]


@functools.lru_cache(maxsize=256)
def _override(expr: str, zone: str) -> Schedule:
    return Schedule(expr, timezone=zone)


def check_job_function(func: object, name: str, *,
                       with_request: bool = True, hint: str = '') -> None:
    """Raise :exc:`TypeError` naming job ``name`` and its function unless
    ``func`` can be called with one positional argument, the request (with
    none, for ``with_request=False``; ``hint`` then says what to do).

    Done at registration: a ``def job():`` would otherwise register fine
    and fail at every run. A callable whose signature cannot be read (some
    builtins and extension types) is accepted.
    """
    if not callable(func):
        raise TypeError(f'job {name!r}: the job must be callable, '
                        f'got {func!r}')
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):  # no signature to check
        return
    try:
        signature.bind(*((object(),) if with_request else ()))
    except TypeError as exc:
        label = getattr(func, '__qualname__', None) or repr(func)
        called = ('with the request as its one positional argument'
                  if with_request else 'with no arguments')
        raise TypeError(f'job {name!r}: {label}{signature} cannot be '
                        f'called {called} ({exc}){hint}') from None


def printable(text: str) -> bool:
    """Whether ``text`` can name a job or an application id: no control
    characters (CR/LF would split a mail header or a log line) and no
    lone surrogates (neither UTF-8 nor the stores take them)."""
    if not text.isprintable():
        return False
    try:
        text.encode('utf-8')
    except UnicodeEncodeError:
        return False
    return True


#: what ``misfire=`` accepts
POLICIES = ('once', 'skip', 'all')


def check_policy(misfire: str, grace: float | timedelta | None,
                 owner: str) -> timedelta | None:
    """``grace`` as a timedelta; ValueError naming ``owner`` if bad."""
    if misfire not in POLICIES:
        raise ValueError(f'{owner}: misfire must be one of '
                         f'{", ".join(POLICIES)}, got {misfire!r}')
    if grace is None:
        return None
    if isinstance(grace, timedelta):
        seconds = grace.total_seconds()
    elif isinstance(grace, (int, float)) and not isinstance(grace, bool):
        seconds = float(grace)
    else:
        raise TypeError(f'{owner}: grace must be seconds or a timedelta, '
                        f'got {grace!r}')
    if not seconds > 0:
        raise ValueError(f'{owner}: grace must be positive, got {grace!r}')
    return timedelta(seconds=seconds)


#: the keywords of a schedule, as ``cronjob()`` and the Morepath
#: directive take them (see :class:`~onecron.schedule.rules.Schedule`)
SCHEDULE_KEYWORDS = ('expr', 'hour', 'minute', 'day', 'month', 'weekday',
                     'timezone', 'every')


def schedule_from(expr: str | None = None, *,
                  hour: int | str | None = None,
                  minute: int | str | None = None,
                  day: int | str | None = None,
                  month: int | str | None = None,
                  weekday: int | str | None = None,
                  timezone: str = 'UTC',
                  every: timedelta | None = None) -> Schedule | None:
    """The schedule ``cronjob()``'s keywords describe; None without any
    (a manual-only job). Raises :class:`~onecron.InvalidSchedule`."""
    if expr is None and every is None and all(
            value is None for value in (hour, minute, day, month, weekday)):
        return None
    return Schedule(expr, hour=hour, minute=minute, day=day, month=month,
                    weekday=weekday, timezone=timezone, every=every)


@dataclass(frozen=True)
class JobOptions:
    """A job's options, declared once: the keywords (and defaults) of
    ``cronjob()``, of the Morepath directive and of :class:`Job` beside
    its schedule, and their checks (:meth:`check`). See :class:`Job` for
    what each means. ``misfire`` None (and ``grace`` None) take the
    :class:`~onecron.CronApp`'s defaults in ``cronjob()``; a :class:`Job`
    made by hand defaults to ``'once'``.
    """

    once: bool = False
    jitter: bool = True
    should_run: ShouldRun | None = None
    then: Iterable[str] = ()
    overlap: str = 'skip'
    timeout: float | None = None
    notify: str = 'failure'
    misfire: str | None = None
    grace: float | timedelta | None = None

    def __post_init__(self) -> None:
        then = self.then
        object.__setattr__(self, 'then', (then,) if isinstance(then, str)
                           else tuple(then))

    def check(self, owner: str) -> None:
        """Raise :exc:`ValueError` or :exc:`TypeError`, starting with
        ``owner`` (``job 'name'``), for an option that is wrong."""
        if self.should_run is not None and not callable(self.should_run):
            raise TypeError(f'{owner}: should_run must be callable, '
                            f'got {self.should_run!r}')
        if not all(isinstance(other, str) and other for other in self.then):
            raise ValueError(f'{owner}: then must list job names, '
                             f'got {self.then!r}')
        if self.overlap not in OVERLAP:
            raise ValueError(f'{owner}: overlap must be one of '
                             f'{", ".join(OVERLAP)}, got {self.overlap!r}')
        if self.notify not in NOTIFY:
            raise ValueError(f'{owner}: notify must be one of '
                             f'{", ".join(NOTIFY)}, got {self.notify!r}')
        timeout = self.timeout
        if timeout is not None and (
                isinstance(timeout, bool)
                or not isinstance(timeout, (int, float)) or not timeout > 0):
            raise ValueError(f'{owner}: timeout must be a positive '
                             f'number of seconds, got {timeout!r}')
        check_policy(self.misfire or 'once', self.grace, owner)

    def keywords(self) -> dict[str, Any]:
        """The options as keywords (values as given, not copied)."""
        return {field.name: getattr(self, field.name)
                for field in dataclasses.fields(self)}

    def given(self) -> dict[str, Any]:
        """The options as keywords, leaving out the None ones (left to
        the CronApp's defaults)."""
        return {name: value for name, value in self.keywords().items()
                if value is not None}


#: the defaults of every option, for the signatures that list them
DEFAULTS = JobOptions()


class Claims(Protocol):
    """What :func:`claim` needs of the run history
    (:class:`~onecron.stores.history.History`)."""

    @property
    def store(self) -> Store | None: ...

    def read(self, query: Callable[[Store], T], default: T) -> T: ...


def claim(history: Claims, application_id: str, name: str,
          occurrence: datetime, key: str, now: datetime) -> bool | None:
    """Claim ``occurrence`` of job ``name`` for the run ``key``: the one
    claim policy of the scheduler and the endpoint.

    True: it may run (claimed; or there is no store; or the host's own
    store failed, which must not stop its jobs). False: another run holds
    it. None: the store is shared by hosts and cannot be reached, so no
    claim can be made and nothing may run (the outage is reported by the
    history).
    """
    store = history.store
    if store is None:
        return True
    won = history.read(lambda store: store.claim(
        application_id, name, occurrence, key=key, now=now), None)
    if won is None:
        return None if store.coordinates else True
    return won


#: what is reported when an operator's schedule override does not parse
BAD_OVERRIDE = 'the schedule override is invalid'


class Job:
    """A function registered with ``@app.cronjob(...)``.

    :param name: unique name, by default ``module.qualname`` of ``func``
    :param func: called with the :class:`webob.Request` of the job URL as
        its one positional argument
    :param schedule: when the job runs; None for a manual-only job (run
        from the status page, its URL or ``app.run_soon``)
    :param once: run only the first occurrence after the scheduler starts
    :param jitter: whether to add the deterministic offset
    :param max_offset: the largest offset in seconds; never more than
        :data:`GAP_SHARE` of the schedule's shortest gap (see
        :meth:`offset_window`)
    :param should_run: called with the application id just before the
        scheduler triggers the job; False skips the run
    :param then: names of jobs to trigger right after a successful run
    :param overlap: ``'skip'`` (default), ``'allow'`` or ``'wait'``: what a
        trigger does while the job still runs on this host
    :param timeout: the scheduler's limit for one call (seconds)
    :param notify: mail ``'failure'`` (default), ``'always'`` or
        ``'never'``
    :param misfire: what a scheduler taking over does about occurrences
        missed while none ran: ``'once'`` (default), ``'skip'`` or
        ``'all'`` (see :mod:`onecron.running.misfire`)
    :param grace: how old a missed occurrence ``'once'`` still runs
        (seconds or a timedelta); None: the shorter of an hour and the
        job's interval
    :param check_signature: check that ``func`` can be called with one
        positional argument (:func:`check_job_function`); a wrapper that
        calls its function another way passes False and checks it itself
    """

    __slots__ = ('name', 'func', 'schedule', 'once', 'jitter', 'max_offset',
                 'should_run', 'then', 'overlap', 'timeout', 'notify',
                 'misfire', 'grace')

    def __init__(self, name: str, func: JobFunction,
                 schedule: Schedule | None, *, once: bool = DEFAULTS.once,
                 jitter: bool = DEFAULTS.jitter, max_offset: float = 30.0,
                 should_run: ShouldRun | None = DEFAULTS.should_run,
                 then: Iterable[str] = DEFAULTS.then,
                 overlap: str = DEFAULTS.overlap,
                 timeout: float | None = DEFAULTS.timeout,
                 notify: str = DEFAULTS.notify, misfire: str = 'once',
                 grace: float | timedelta | None = DEFAULTS.grace,
                 check_signature: bool = True) -> None:
        if not isinstance(name, str) or not name or not printable(name):
            raise ValueError(f'a job name must be a non-empty str of '
                             f'printable characters, got {name!r:.80}')
        if not callable(func):
            raise TypeError(f'job {name!r}: the job must be callable, '
                            f'got {func!r}')
        if check_signature:
            check_job_function(func, name)
        options = JobOptions(
            once=once, jitter=jitter, should_run=should_run, then=then,
            overlap=overlap, timeout=timeout, notify=notify,
            misfire=misfire, grace=grace)
        options.check(f'job {name!r}')
        self.name = name
        self.func = func
        self.schedule = schedule
        self.once = once
        self.jitter = jitter
        self.max_offset = max_offset
        self.should_run = should_run
        self.then: tuple[str, ...] = tuple(options.then)
        self.overlap = overlap
        self.timeout = timeout
        self.notify = notify
        self.misfire = misfire
        #: None: the default, see :func:`onecron.running.misfire.plan`
        self.grace = check_policy(misfire, grace, f'job {name!r}')

    @property
    def manual(self) -> bool:
        """Whether the job has no schedule and only runs when asked to."""
        return self.schedule is None

    def offset_window(self, schedule: Schedule | None = None) -> float:
        """The largest offset of this job under ``schedule``, in seconds.

        ``max_offset``, but at most :data:`GAP_SHARE` (a half) of the
        schedule's :attr:`~onecron.schedule.Schedule.shortest_gap`, so no
        fire reaches the next occurrence; 0 without jitter. ``schedule``
        is the one in force (an operator's override); by default the
        job's own, and ``max_offset`` for a manual-only job.
        """
        if not self.jitter or self.max_offset <= 0:
            return 0.0
        schedule = schedule or self.schedule
        if schedule is None:
            return float(self.max_offset)
        return min(float(self.max_offset),
                   GAP_SHARE * schedule.shortest_gap.total_seconds())

    def offset_for(self, application_id: str,
                   schedule: Schedule | None = None) -> float:
        """The jitter of this job for ``application_id``, in seconds.

        In ``[0, offset_window(schedule)]``: below the shortest gap between
        two fires of ``schedule`` (by default the job's own), so a fire
        never reaches the next occurrence. The same in every process and
        after every restart, different per job and per application id (a
        point of the unit interval scaled to the window), so a hundred
        tenants' midnight jobs do not hit the site in the same second.
        """
        window = self.offset_window(schedule)
        if not window:
            return 0.0
        return _unit_interval(self.name, application_id) * window

    def next_runtime(self, after: datetime,
                     application_id: str = 'default',
                     schedule: Schedule | None = None) -> datetime:
        """The first fire strictly after ``after``, offset included.

        Aware, in the schedule's zone. The offset is added in UTC: adding
        a timedelta to a zoned datetime is wall-clock arithmetic, which
        would move a fire in a repeated hour by that hour. ``schedule``
        replaces the job's own (an operator's override), and bounds the
        offset by its own shortest gap.
        """
        schedule = schedule or self._scheduled()
        offset = timedelta(seconds=self.offset_for(application_id,
                                                   schedule))
        occurrence = schedule.next_after(_utc(after) - offset)
        return (_utc(occurrence) + offset).astimezone(schedule.tz)

    def occurrence_of(self, runtime: datetime,
                      application_id: str = 'default',
                      schedule: Schedule | None = None) -> datetime:
        """The nominal scheduled time (before jitter) of a fire time.

        ``schedule`` must be the one :meth:`next_runtime` was given: the
        offset depends on it.
        """
        offset = timedelta(seconds=self.offset_for(application_id,
                                                   schedule))
        return (_utc(runtime) - offset).astimezone(runtime.tzinfo)

    def schedule_with(self, settings: JobSettings | None) -> Schedule | None:
        """The schedule in force under an operator's ``settings``.

        An override replaces the code's schedule (in the override's zone,
        or the job's); None means the code's. Raises
        :class:`~onecron.InvalidSchedule` for an override that does not
        parse.
        """
        if settings is None or settings.schedule is None:
            return self.schedule
        zone = settings.timezone or (
            self.schedule.timezone if self.schedule is not None else 'UTC')
        return _override(settings.schedule, zone)

    def schedule_in_force(self, settings: JobSettings | None,
                          bad: Callable[[ValueError], object]
                          ) -> Schedule | None:
        """:meth:`schedule_with`, but the code's schedule when the
        override is bad: ``bad`` gets the error (to report it), and a bad
        override in the store never stops the job (the one fallback of
        the scheduler and the status page)."""
        try:
            return self.schedule_with(settings)
        except ValueError as exc:
            bad(exc)
            return self.schedule

    def _scheduled(self) -> Schedule:
        if self.schedule is None:
            raise ValueError(f'job {self.name!r} is manual-only: it has no '
                             f'schedule')
        return self.schedule

    def __repr__(self) -> str:
        when = 'manual' if self.schedule is None else repr(self.schedule)
        return f'<Job {self.name!r} {when}>'
