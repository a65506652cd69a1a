"""The settings of a :class:`~onecron.CronApp`, one small object per concern.

Each is a frozen dataclass that checks itself when it is made, with errors
naming the :class:`~onecron.CronApp` keyword that was wrong, so a bad
setting fails where the app is built and never in a scheduler thread.
``CronApp.__init__`` builds them from its keywords and hands each to the
part that uses it; being frozen, no part can go on with a value another
part no longer has. A setting that may change later (the jobs' defaults)
is replaced whole, through :func:`dataclasses.replace`, which checks the
new value the same way.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Generic,
    NoReturn,
    ParamSpec,
    TypeVar,
    overload,
)

from onecron.job import Job, JobOptions, check_policy
from onecron.protocol.signing import GOOD_SECRET, secrets_list, weak_secret
from onecron.schedule.rules import Schedule

if TYPE_CHECKING:
    from webob import Request

    from onecron.running.caller import Caller

#: who may see the status page or call the job URLs
Policy = str | Callable[['Request'], bool]

__all__ = ['CallSettings', 'Delegate', 'JobDefaults', 'JobUrls', 'Live',
           'MisfireSettings', 'ReadOnly', 'Retention', 'SchedulerSettings',
           'StatusPageSettings',
           'checked_secrets']

log = logging.getLogger('onecron.app')

T = TypeVar('T')
S = TypeVar('S')
P = ParamSpec('P')
R = TypeVar('R')

#: the policies a str may name (the rest is a callable)
_POLICIES = ('loopback', 'any')


def _positive(label: str, number: object) -> None:
    if (isinstance(number, bool) or not isinstance(number, (int, float))
            or not 0 < number < float('inf')):
        raise ValueError(f'{label} must be positive, got {number!r}')


def _policy(label: str, policy: object) -> None:
    if not callable(policy) and policy not in _POLICIES:
        raise ValueError(f'{label} must be one of {", ".join(_POLICIES)} '
                         f'or a callable, got {policy!r}')


def _proxies(label: str, proxies: Sequence[str]) -> tuple[str, ...]:
    if isinstance(proxies, str):
        raise TypeError(f'{label} must be a list of str, not one str')
    return tuple(proxies)


def normalise_prefix(prefix: object) -> str:
    """``prefix`` without its trailing slash; ValueError if it is not a
    path under the root."""
    if not isinstance(prefix, str) or not prefix.startswith('/'):
        raise ValueError(f'prefix must start with "/", got {prefix!r}')
    prefix = prefix.rstrip('/')
    if not prefix:
        raise ValueError('prefix must not be "/": it would take over every '
                         'request of the wrapped application')
    return prefix


@dataclass(frozen=True)
class JobUrls:
    """Where the job URLs live and which of them run a job.

    The keywords of :class:`~onecron.CronApp` of the same names:
    ``prefix`` (kept without its trailing slash), ``occurrence_tokens``,
    ``occurrence_window`` (seconds), ``static_urls``, ``job_access`` and
    ``trusted_proxies``.
    """

    prefix: str = '/cronjobs'
    occurrence_tokens: bool = False
    occurrence_window: float = 300.0
    static_urls: bool = True
    job_access: Policy = 'any'
    trusted_proxies: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, 'prefix', normalise_prefix(self.prefix))
        for label, flag in (('occurrence_tokens', self.occurrence_tokens),
                            ('static_urls', self.static_urls)):
            if not isinstance(flag, bool):
                raise TypeError(f'{label} must be True or False, '
                                f'got {flag!r}')
        window = self.occurrence_window
        if (isinstance(window, bool) or not isinstance(window, (int, float))
                or not 0 < window < float('inf')):
            raise ValueError(f'occurrence_window must be a positive number '
                             f'of seconds, got {window!r}')
        object.__setattr__(self, 'occurrence_window', float(window))
        if not self.static_urls and not self.occurrence_tokens:
            raise ValueError('static_urls=False needs occurrence_tokens=True'
                             ': without either, no URL could run a job')
        _policy('job_access', self.job_access)
        object.__setattr__(self, 'trusted_proxies', _proxies(
            'trusted_proxies', self.trusted_proxies))


@dataclass(frozen=True)
class StatusPageSettings:
    """Who sees the status page: the :class:`~onecron.CronApp` keywords
    ``status_access``, ``status_user``, ``status_password_hash`` and
    ``trusted_proxies``. The password hash itself is checked by
    :class:`~onecron.access.Access` when the page is made."""

    access: Policy = 'loopback'
    user: str | None = None
    password_hash: str | None = None
    trusted_proxies: Sequence[str] = ()

    def __post_init__(self) -> None:
        _policy('status_access', self.access)
        for label, value in (('status_user', self.user),
                             ('status_password_hash', self.password_hash)):
            if value is not None and not isinstance(value, str):
                raise TypeError(f'{label} must be a str or None, '
                                f'got {type(value).__name__}')
        object.__setattr__(self, 'trusted_proxies', _proxies(
            'trusted_proxies', self.trusted_proxies))


#: the defaults of the Caller onecron makes
DEFAULT_MAX_CONCURRENT = 16
DEFAULT_CONNECT_TIMEOUT = 10.0


@dataclass(frozen=True)
class CallSettings:
    """How the scheduler calls the job URLs, and when a run is slow.

    The :class:`~onecron.CronApp` keywords ``trigger_timeout``,
    ``connect_timeout``, ``max_concurrent``, ``pool_size``, ``slow_after``
    and ``caller``. A given ``caller`` has its own ``max_concurrent`` and
    ``connect_timeout``: giving them too is refused, as they would be
    ignored.
    """

    trigger_timeout: float = 3600.0
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_concurrent: int = DEFAULT_MAX_CONCURRENT
    pool_size: int | None = None
    slow_after: float = 30.0
    caller: Caller | None = None

    def __post_init__(self) -> None:
        for label in ('slow_after', 'trigger_timeout', 'connect_timeout'):
            _positive(label, getattr(self, label))
        if (isinstance(self.max_concurrent, bool)
                or not isinstance(self.max_concurrent, int)
                or self.max_concurrent < 1):
            raise ValueError(f'max_concurrent must be a positive int, '
                             f'got {self.max_concurrent!r}')
        size = self.pool_size
        if size is not None and (isinstance(size, bool)
                                 or not isinstance(size, int) or size < 1):
            raise ValueError(f'pool_size must be a whole number of at '
                             f'least 1, got {size!r}')
        if self.caller is not None and (
                self.max_concurrent != DEFAULT_MAX_CONCURRENT
                or self.connect_timeout != DEFAULT_CONNECT_TIMEOUT):
            raise ValueError(
                'CronApp(caller=...) with max_concurrent or connect_timeout:'
                ' those configure the Caller onecron makes, and would be '
                'ignored; pass them to your Caller(max_concurrent=..., '
                'connect_timeout=...) instead')


@dataclass(frozen=True)
class Retention:
    """How long runs are kept: the :class:`~onecron.CronApp` keywords
    ``keep_runs`` (per job) and ``keep_days``; None keeps them all."""

    keep_runs: int | None = 1000
    keep_days: float | None = 90

    def __post_init__(self) -> None:
        for label in ('keep_runs', 'keep_days'):
            keep = getattr(self, label)
            if keep is None:
                continue
            if (isinstance(keep, bool) or not isinstance(keep, (int, float))
                    or not keep > 0):
                raise ValueError(f'{label} must be positive or None, '
                                 f'got {keep!r}')


@dataclass(frozen=True)
class SchedulerSettings:
    """Where and when this process schedules: the
    :class:`~onecron.CronApp` keywords ``enabled``, ``autostart``
    (``'auto'``, True or False), ``lock_dir`` and ``lease_time``."""

    enabled: bool = True
    autostart: bool | str = 'auto'
    lock_dir: str | None = None
    lease_time: float = 30.0

    def __post_init__(self) -> None:
        if not (isinstance(self.autostart, bool)
                or self.autostart == 'auto'):
            raise ValueError(f"autostart must be 'auto', True or False, "
                             f'got {self.autostart!r:.80}')
        _positive('lease_time', self.lease_time)


@dataclass(frozen=True)
class MisfireSettings:
    """The jobs' defaults for missed occurrences: the
    :class:`~onecron.CronApp` keywords ``misfire`` and ``grace`` (seconds
    or a timedelta; None: see :func:`onecron.running.misfire.plan`)."""

    misfire: str = 'once'
    grace: float | timedelta | None = None

    def __post_init__(self) -> None:
        check_policy(self.misfire, self.grace, 'CronApp')


def checked_secrets(secret: str | Sequence[str]) -> list[str]:
    """The ``secret`` keyword as a list (see
    :func:`~onecron.protocol.signing.secrets_list`); a weak one is warned
    about, never shown."""
    secrets = secrets_list(secret)
    for index, entry in enumerate(secrets):
        weakness = weak_secret(entry)
        if weakness is not None:
            # the secret itself is never shown, nor any part of it
            log.warning('CronApp(secret=...): secret %d of %d is weak, '
                        '%s: whoever guesses it runs every job; %s',
                        index + 1, len(secrets), weakness, GOOD_SECRET)
    return secrets


class JobDefaults:
    """The defaults a :class:`~onecron.CronApp` gives its jobs:
    ``max_offset``, ``misfire`` and ``grace``. They may be set after the
    app is made (each change is checked; jobs registered afterwards take
    the new value).
    """

    def __init__(self, max_offset: float, misfire: MisfireSettings) -> None:
        self.max_offset = max_offset
        self.misfire_settings = misfire

    @property
    def max_offset(self) -> float:
        """The jobs' default largest jitter (seconds)."""
        return self._max_offset

    @max_offset.setter
    def max_offset(self, value: float) -> None:
        if (isinstance(value, bool) or not isinstance(value, (int, float))
                or not value >= 0):
            raise ValueError(f'max_offset must be 0 or more, got {value!r}')
        self._max_offset = value

    @property
    def misfire(self) -> str:
        """The jobs' default ``misfire`` policy."""
        return self.misfire_settings.misfire

    @misfire.setter
    def misfire(self, value: str) -> None:
        self.misfire_settings = dataclasses.replace(
            self.misfire_settings, misfire=value)

    @property
    def grace(self) -> float | timedelta | None:
        """The jobs' default ``grace`` (seconds or a timedelta)."""
        return self.misfire_settings.grace

    @grace.setter
    def grace(self, value: float | timedelta | None) -> None:
        self.misfire_settings = dataclasses.replace(
            self.misfire_settings, grace=value)

    def job(self, name: str, func: Callable[[Any], Any],
            schedule: Schedule | None, options: JobOptions,
            **more: Any) -> Job:
        """A :class:`~onecron.job.Job` of ``options``, with these defaults
        where they leave one (``misfire``, ``grace``, ``max_offset``);
        ``more`` goes to the Job as is."""
        given = options.given()
        given.setdefault('misfire', self.misfire)
        given.setdefault('grace', self.grace)
        return Job(name, func, schedule, max_offset=self.max_offset,
                   **given, **more)


# -- the attributes of the composition root ---------------------------


class ReadOnly(Generic[T]):
    """An attribute of the :class:`~onecron.CronApp` read from the part or
    settings object that took it when the app was made (``path``, dotted).

    Setting it raises :exc:`AttributeError` saying why (the parts would go
    on with the old value); type checkers refuse the assignment too.
    """

    def __init__(self, path: str, doc: str,
                 copy: Callable[[Any], T] | None = None) -> None:
        self._read = operator.attrgetter(path)
        self._copy = copy
        self.__doc__ = doc
        self.name = path

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> ReadOnly[T]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object, owner: type) -> T | ReadOnly[T]:
        if obj is None:
            return self
        value: T = self._read(obj)
        return value if self._copy is None else self._copy(value)

    def __set__(self, obj: object, value: NoReturn) -> NoReturn:
        raise AttributeError(
            f'CronApp.{self.name} cannot be changed once the CronApp is '
            f'made: its parts (job endpoint, status page, schedulers) took '
            f'it then, and would go on with the old value. Pass '
            f'CronApp({self.name}=...) instead')


class Live(Generic[T, S]):
    """An attribute of the :class:`~onecron.CronApp` that may be set: the
    attribute of the same name of the part at ``path`` (dotted), which
    checks a new value and owns it, so every part sees the same one."""

    def __init__(self, path: str, doc: str) -> None:
        self._part = operator.attrgetter(path)
        self.__doc__ = doc
        self.name = path

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> Live[T, S]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> T: ...

    def __get__(self, obj: object, owner: type) -> T | Live[T, S]:
        if obj is None:
            return self
        value: T = getattr(self._part(obj), self.name)
        return value

    def __set__(self, obj: object, value: S) -> None:
        setattr(self._part(obj), self.name, value)


class Delegate(Generic[P, R]):
    """A method of the :class:`~onecron.CronApp` that is ``method`` of its
    part ``part`` (an attribute name): the CronApp composes its parts and
    hands each call to the one that does it. On an instance it is the
    part's bound method."""

    def __init__(self, part: str,
                 method: Callable[Concatenate[Any, P], R]) -> None:
        self._part = part
        self._name = method.__name__
        self.__doc__ = method.__doc__
        self.__wrapped__ = method

    @overload
    def __get__(self, obj: None, owner: type) -> Delegate[P, R]: ...

    @overload
    def __get__(self, obj: object, owner: type) -> Callable[P, R]: ...

    def __get__(self, obj: object,
                owner: type) -> Callable[P, R] | Delegate[P, R]:
        if obj is None:
            return self
        bound: Callable[P, R] = getattr(getattr(obj, self._part), self._name)
        return bound

    def __call__(self, obj: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Called on the class, as ``CronApp.run_soon(app, ...)``; its
        signature is the method's (``__wrapped__``), for documentation."""
        method: Callable[P, R] = getattr(getattr(obj, self._part),
                                         self._name)
        return method(*args, **kwargs)
