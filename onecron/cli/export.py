"""Schedules for other schedulers: Kubernetes CronJobs, systemd timers, cron.

A job's URL works for any caller, so a cluster or a host can run the jobs
instead of onecron's scheduler. This module translates a
:class:`~onecron.schedule.Schedule` into a 5-field cron expression
(:func:`cron_expression`) or systemd ``OnCalendar=`` values
(:func:`on_calendar`), and renders those into text (:func:`kubernetes`,
:func:`systemd`, :func:`crontab`). Everything here is pure: no clock, no
I/O, no application; the command line (:mod:`onecron.cli`) collects the
jobs and writes the text.

A job's URL is its key, so no rendered command line holds one: a
command line is readable by every local user (``/proc/*/cmdline``) and a
CronJob spec by anyone allowed to view it. systemd and cron run
``curl -K FILE`` on a curl config file holding the URL
(:func:`curl_config`), which :attr:`Export.configs` gives for the caller to
write privately; a Kubernetes CronJob takes its URL from a ``Secret``
into an environment variable, which its shell hands to curl on stdin.

What cannot be translated raises
:class:`~onecron.errors.UntranslatableSchedule` and the renderers skip that
job with a comment saying why: seconds, or the Quartz ``L``, ``W`` and
``#`` days, in cron (``W`` anywhere), intervals that do not divide a day,
and day/weekday combinations a target reads differently. Intervals count
from the Unix epoch, so they are exported in UTC whatever the job's zone.
External schedulers fire at the nominal time (no jitter) and follow their
own rules across DST changes.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Union

from onecron.errors import UntranslatableSchedule
from onecron.schedule.cron import CronExpression
from onecron.schedule.rules import Schedule

__all__ = ['Dialect', 'Export', 'JobCall', 'Skipped', 'cron_expression',
           'crontab', 'crontab_command', 'crontab_config_command',
           'curl_config', 'dns_label', 'kubernetes', 'on_calendar',
           'systemd', 'systemd_word', 'unique_names', 'yaml_string']

#: which cron reads the expression: Vixie cron and cronie, or Kubernetes
#: (robfig/cron, which reads ``*/n`` days as restricted)
Dialect = Literal['cron', 'kubernetes']

_DAY = 86400
# systemd weekday names in cron numbering (0 = Sunday)
_SYSTEMD_DAYS = ('Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat')
# OnCalendar= lines one interval may take before it is refused
_MAX_EVENTS = 24


# -- translation ------------------------------------------------------------

def cron_expression(schedule: Schedule, *,
                    dialect: Dialect = 'cron') -> tuple[str, str]:
    """``schedule`` as five cron fields and the zone to read them in.

    Fields are rebuilt from the parsed values (``*``, ``*/n``, ``a-b/n``,
    ranges and lists; weekdays 0-6), so ``SAT-SUN`` or a 7 for Sunday
    reach no cron that reads them differently. Intervals are given in UTC.

    :param dialect: ``'cron'`` (Vixie cron, cronie) or ``'kubernetes'``
    :raises UntranslatableSchedule: naming the job's field and the reason
    """
    if schedule.every is not None:
        seconds, minutes, hours = _interval_fields(schedule)
        if seconds != {0}:
            raise UntranslatableSchedule(
                f'{schedule} fires at seconds other than :00; 5-field cron '
                f'fires on whole minutes')
        return (f'{_cron_field(minutes, 0, 59)} {_cron_field(hours, 0, 23)}'
                ' * * *'), 'UTC'
    cron = _cron_of(schedule)
    if cron.seconds != (0,):
        raise UntranslatableSchedule(
            f'{cron.text!r} has a seconds field ({cron.fields[0]}); 5-field '
            f'cron fires on whole minutes')
    day, weekday = _cron_days(cron, dialect)
    return ' '.join((_cron_field(cron.minutes, 0, 59),
                     _cron_field(cron.hours, 0, 23), day,
                     _cron_field(cron.months, 1, 12),
                     weekday)), schedule.timezone


def on_calendar(schedule: Schedule) -> list[str]:
    """``schedule`` as systemd ``OnCalendar=`` values, zone appended.

    One value for most schedules, e.g. ``*-*-* 08:30:00 Europe/Zurich``;
    several when a day matching either the day or the weekday field runs
    (systemd requires both), or for an interval whose times of day are not
    one list of hours by one of minutes. ``L``, ``n#k`` and ``nL`` become
    ``~01``, a week of days and ``~07/1``.

    :raises UntranslatableSchedule: for ``W`` days, intervals that do not
        divide a day, and combinations systemd cannot say
    """
    if schedule.every is not None:
        return [f'*-*-* {clock} UTC' for clock in _interval_clocks(schedule)]
    cron = _cron_of(schedule)
    clock = ':'.join((_calendar_part(cron.hours, 0, 23),
                      _calendar_part(cron.minutes, 0, 59),
                      _calendar_part(cron.seconds, 0, 59)))
    month = _calendar_part(cron.months, 1, 12)
    events = []
    for weekdays, day in _calendar_days(cron):
        names = '' if weekdays is None else f'{_weekday_names(weekdays)} '
        separator = '' if day.startswith('~') else '-'
        events.append(f'{names}*-{month}{separator}{day} {clock} '
                      f'{schedule.timezone}')
    return events


def _cron_of(schedule: Schedule) -> CronExpression:
    assert schedule.cron is not None  # not an interval
    return schedule.cron


def _interval_times(schedule: Schedule) -> list[int]:
    """The interval's fire times as seconds of the (UTC) day."""
    assert schedule.every is not None
    step = int(schedule.every.total_seconds())
    if _DAY % step:
        raise UntranslatableSchedule(
            f'{schedule} does not divide a day: its times of day shift from '
            f'day to day, which no calendar expression can follow')
    return list(range(0, _DAY, step))


def _interval_fields(schedule: Schedule) -> tuple[set[int], set[int],
                                                  set[int]]:
    """Seconds, minutes and hours whose every combination is a fire time."""
    times = _interval_times(schedule)
    seconds = {t % 60 for t in times}
    minutes = {t // 60 % 60 for t in times}
    hours = {t // 3600 for t in times}
    if len(seconds) * len(minutes) * len(hours) != len(times):
        raise UntranslatableSchedule(
            f'{schedule} fires at different minutes in different hours; one '
            f'cron line takes each listed minute in each listed hour')
    return seconds, minutes, hours


def _interval_clocks(schedule: Schedule) -> list[str]:
    """``HH:MM:SS`` patterns that together cover the interval's times."""
    try:
        seconds, minutes, hours = _interval_fields(schedule)
    except UntranslatableSchedule:
        times = _interval_times(schedule)
        by_minute: dict[tuple[int, int], set[int]] = {}
        for t in times:
            by_minute.setdefault((t // 60 % 60, t % 60), set()).add(t // 3600)
        if len(by_minute) > _MAX_EVENTS:
            raise UntranslatableSchedule(
                f'{schedule} would take {len(by_minute)} OnCalendar= lines '
                f'(at most {_MAX_EVENTS})') from None
        return [f'{_calendar_part(hours_, 0, 23)}:{minute:02}:{second:02}'
                for (minute, second), hours_ in sorted(by_minute.items())]
    return [':'.join((_calendar_part(hours, 0, 23),
                      _calendar_part(minutes, 0, 59),
                      _calendar_part(seconds, 0, 59)))]


def _quartz_days(cron: CronExpression) -> str | None:
    """The Quartz extensions ``cron`` uses, in words, or None."""
    *_, day, _, weekday = cron.fields
    if cron.last_day or cron.last_workday or cron.nearest_workdays:
        return f'day {day!r} (L and W)'
    if cron.nth_weekdays or cron.last_weekdays:
        return f'weekday {weekday!r} (# and L)'
    return None


def _cron_days(cron: CronExpression, dialect: Dialect) -> tuple[str, str]:
    """The day and weekday fields, read by ``dialect`` as onecron does.

    Vixie cron, cronie and onecron run a day matching either field when
    both are restricted (neither starts with ``*``), one matching both
    otherwise; robfig/cron (Kubernetes) takes only a plain ``*`` as
    unrestricted.
    """
    target = 'Kubernetes' if dialect == 'kubernetes' else 'cron'
    quartz = _quartz_days(cron)
    if quartz is not None:
        raise UntranslatableSchedule(
            f'{cron.text!r} uses Quartz extensions in {quartz}, which '
            f'{target} does not support')
    every_day = len(cron.days) == 31
    every_weekday = len(cron.weekdays) == 7
    if cron.day_restricted and cron.weekday_restricted:  # either matches
        if every_day or every_weekday:
            return '*', '*'
        return (_cron_field(cron.days, 1, 31, star=False),
                _cron_field(cron.weekdays, 0, 6, star=False))
    # both must match: one field must read as unrestricted
    if every_day:
        return '*', _cron_field(cron.weekdays, 0, 6)
    if every_weekday:
        return _cron_field(cron.days, 1, 31), '*'
    day = _cron_field(cron.days, 1, 31)
    weekday = _cron_field(cron.weekdays, 0, 6)
    unrestricted = [text for text, restricted in (
        (day, cron.day_restricted), (weekday, cron.weekday_restricted))
        if not restricted]
    if dialect == 'kubernetes' or not any(
            text.startswith('*') for text in unrestricted):
        *_, day_text, _, weekday_text = cron.fields
        raise UntranslatableSchedule(
            f'{cron.text!r} runs on days matching both day {day_text!r} and '
            f'weekday {weekday_text!r}; {target} would run on days matching '
            f'either')
    return day, weekday


def _calendar_days(
        cron: CronExpression) -> list[tuple[frozenset[int] | None, str]]:
    """(weekdays or None for any, day part) pairs; a day matching any pair
    runs. systemd requires a weekday and a date to match both."""
    *_, day_text, _, weekday_text = cron.fields
    if cron.last_workday or cron.nearest_workdays:
        raise UntranslatableSchedule(
            f'{cron.text!r}: systemd has no "nearest weekday" for day '
            f'{day_text!r}')
    days: list[str] = []
    if cron.days:
        days.append(_calendar_part(cron.days, 1, 31))
    if cron.last_day:
        days.append('~01')
    weekly: list[tuple[frozenset[int] | None, str]] = []
    if cron.weekdays:
        weekly.append((_any_weekday(cron.weekdays), '*'))
    weekly += [(frozenset({weekday}), f'{7 * k - 6:02}..{7 * k:02}')
               for weekday, k in sorted(cron.nth_weekdays)]
    weekly += [(frozenset({weekday}), '~07/1')
               for weekday in sorted(cron.last_weekdays)]
    if cron.day_restricted and cron.weekday_restricted:  # either matches
        if days == ['*'] or weekly == [(None, '*')]:
            return [(None, '*')]
        return [(None, day) for day in days] + weekly
    if not cron.day_restricted:  # '*', '?' or '*/n' days: plain ones
        plain = cron.days
        if cron.last_day and len(plain) < 31:
            raise UntranslatableSchedule(
                f'{cron.text!r}: systemd cannot say day {day_text!r}')
        days = days[:1]
        pairs = []
        for weekdays, part in weekly:
            if part == '*':
                pairs.append((weekdays, days[0]))
            elif part.startswith('~'):
                if len(plain) < 31:
                    raise UntranslatableSchedule(
                        f'{cron.text!r}: systemd cannot combine day '
                        f'{day_text!r} with weekday {weekday_text!r}')
                pairs.append((weekdays, part))
            else:
                first = int(part[:2])
                week = plain & set(range(first, first + 7))
                if week:
                    pairs.append((weekdays, _calendar_part(week, 1, 31)))
        return pairs
    # restricted days, unrestricted ('*', '?', '*/n') weekdays
    if len(weekly) > 1 and len(cron.weekdays) < 7:
        raise UntranslatableSchedule(
            f'{cron.text!r}: systemd cannot say weekday {weekday_text!r}')
    return [(_any_weekday(cron.weekdays), day) for day in days]


def _any_weekday(weekdays: frozenset[int]) -> frozenset[int] | None:
    return None if len(weekdays) == 7 else weekdays


def _progression(values: Sequence[int]) -> int | None:
    """The step of sorted ``values`` if they are evenly spaced (step > 1)."""
    if len(values) < 2:
        return None
    step = values[1] - values[0]
    if step > 1 and all(b - a == step for a, b in zip(values, values[1:])):
        return step
    return None


def _runs(values: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted ``values`` as (first, last) runs of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


def _listed(values: Sequence[int], dash: str, width: int = 0) -> str:
    """Runs of three or more as ranges, other values one by one."""
    items = []
    for first, last in _runs(values):
        if last - first >= 2:
            items.append(f'{first:0{width}}{dash}{last:0{width}}')
        else:
            items += [f'{value:0{width}}' for value in range(first, last + 1)]
    return ','.join(items)


def _cron_field(values: Iterable[int], low: int, high: int, *,
                star: bool = True) -> str:
    """A cron field for ``values``; ``star=False`` never starts with ``*``
    (Vixie cron reads such a day or weekday field as unrestricted)."""
    ordered = sorted(values)
    step = _progression(ordered)
    if star:
        if ordered == list(range(low, high + 1)):
            return '*'
        # '*/6' reads badly for Saturday and Sunday: steps over weekdays
        # only for three or more
        if (step and ordered[0] == low and ordered[-1] + step > high
                and (len(ordered) > 2 or high > 7)):
            return f'*/{step}'
    if step and len(ordered) > 2:
        return f'{ordered[0]}-{ordered[-1]}/{step}'
    return _listed(ordered, '-')


def _calendar_part(values: Iterable[int], low: int, high: int) -> str:
    """A component of a systemd calendar event: ``*``, ``05/15``, lists."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return '*'
    step = _progression(ordered)
    if step and len(ordered) > 2 and ordered[-1] + step > high:
        return f'{ordered[0]:02}/{step}'
    return _listed(ordered, '..', width=2)


def _weekday_names(weekdays: Iterable[int]) -> str:
    monday_first = sorted((day + 6) % 7 for day in weekdays)
    named = _listed(monday_first, '..')
    return re.sub('[0-6]', lambda m: _SYSTEMD_DAYS[(int(m[0]) + 1) % 7],
                  named)


# -- names ------------------------------------------------------------------

def unique_names(names: Iterable[str], clean: Callable[[str], str], *,
                 max_length: int) -> dict[str, str]:
    """A distinct cleaned name for each of ``names``, at most ``max_length``.

    A name that had to be cut, or whose cleaned form another name shares,
    ends in ``-`` and six hex digits of its digest, so the result stays
    the same as long as the set of colliding names does.
    """
    cleaned = {name: clean(name) for name in names}
    counts: dict[str, int] = {}
    for text in cleaned.values():
        counts[text] = counts.get(text, 0) + 1
    result = {}
    for name, text in cleaned.items():
        if len(text) > max_length or counts[text] > 1:
            digest = hashlib.blake2b(name.encode('utf-8'),
                                     digest_size=3).hexdigest()
            head = text[:max_length - len(digest) - 1].rstrip('-.')
            text = f'{head}-{digest}' if head else digest
        result[name] = text
    if len(set(result.values())) < len(result):  # a digest collision
        raise ValueError(f'job names {sorted(result)} do not give distinct '
                         f'names')
    return result


def dns_label(name: str) -> str:
    """``name`` as an RFC 1123 label: lower case ``[a-z0-9-]``."""
    return re.sub('[^a-z0-9]+', '-', name.lower()).strip('-') or 'job'


def _unit_name(name: str) -> str:
    return re.sub('[^A-Za-z0-9_.-]+', '-', name).strip('-.') or 'job'


# -- the jobs and what became of them ----------------------------------------

@dataclass(frozen=True)
class JobCall:
    """What an external scheduler needs of one job."""

    name: str
    #: None for a manual-only job, which is skipped
    schedule: Schedule | None
    #: the signed URL; None for a manual-only job
    url: str | None
    #: curl's ``--max-time`` in seconds
    max_time: int


@dataclass(frozen=True)
class Skipped:
    """A job left out of an export, and why."""

    job: str
    reason: str
    #: whether the job has no schedule (rather than an untranslatable one)
    manual: bool = False


@dataclass(frozen=True)
class Export:
    """Generated files as (name, text), and the jobs left out.

    ``configs`` are the curl config files (name, text) that hold the job
    URLs the ``files`` refer to by path: the caller writes them, readable
    only by their owner, into the directory the renderer was given.
    """

    files: tuple[tuple[str, str], ...]
    skipped: tuple[Skipped, ...]
    configs: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        """Everything in one text; several files under ``# file:`` lines."""
        if len(self.files) == 1:
            return self.files[0][1]
        head = _skipped_comments(self.skipped)
        return head + ''.join(f'# file: {name}\n{text}\n'
                              for name, text in self.files)


# what RFC 3986 lets a URL hold: no space, quote, backslash or control
# character, which would end or change the URL in a config file or a shell
_URL = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")


def _plan(jobs: Iterable[JobCall],
          translate: Callable[[Schedule], object]) -> tuple[
              list[tuple[JobCall, str]], list[Skipped]]:
    """Scheduled jobs with their URL; the others, skipped with a reason.

    :raises ValueError: for a URL with characters no URL may hold, naming
        the job (never the URL, which is its key)
    """
    planned: list[tuple[JobCall, str]] = []
    skipped: list[Skipped] = []
    for job in jobs:
        if job.schedule is None or job.url is None:
            skipped.append(Skipped(job.name, 'manual only: no schedule',
                                   manual=True))
            continue
        if not _URL.fullmatch(job.url):
            raise ValueError(
                f'the URL of job {job.name!r} holds a character no URL may '
                f'(a space, quote, backslash or control character): check '
                f'the base URL')
        try:
            translate(job.schedule)
        except UntranslatableSchedule as exc:
            skipped.append(Skipped(job.name, str(exc)))
            continue
        planned.append((job, job.url))
    return planned, skipped


def _one_line(text: str) -> str:
    """``text`` safe for a comment line of any of the formats."""
    return re.sub(r'[\x00-\x1f\x7f-\x9f\u2028\u2029]', '?', text)


def _skipped_comments(skipped: Iterable[Skipped]) -> str:
    return ''.join(f'# skipped {_one_line(item.job)}: '
                   f'{_one_line(item.reason)}\n' for item in skipped)


def _about(job: JobCall) -> str:
    assert job.schedule is not None
    return _one_line(f'{job.name}: {job.schedule.describe()} '
                     f'({job.schedule})')


def _config_name(name: str) -> str:
    """The curl config file of the job whose unit name is ``name``."""
    return f'onecron-{name}.curlrc'


def _check_config_dir(config_dir: str) -> None:
    if not posixpath.isabs(config_dir):
        raise ValueError(f'config_dir must be an absolute path (cron and '
                         f'systemd run curl elsewhere), got {config_dir!r}')
    if _one_line(config_dir) != config_dir:
        raise ValueError(f'config_dir must not hold control characters, got '
                         f'{config_dir!r}')


def curl_config(url: str, *, job: str | None = None) -> str:
    """A curl config file (``curl -K FILE``) that gives curl ``url``.

    The URL is double-quoted with curl's escapes (``\\\\`` and ``\\"``);
    ``job`` goes in a comment above it.
    """
    if _one_line(url) != url:
        raise ValueError('a URL in a curl config file must not hold control '
                         'characters')
    escaped = url.replace('\\', '\\\\').replace('"', '\\"')
    about = '' if job is None else f' of onecron job {_one_line(job)}'
    return (f'# The signed URL{about}: whoever can read this file can run '
            f'the job.\nurl = "{escaped}"\n')


# -- Kubernetes ---------------------------------------------------------------

Yaml = Union[str, int, bool, None, Sequence['Yaml'],  # noqa: UP007
             Mapping[str, 'Yaml']]  # a recursive alias needs Union

_NOT_PRINTABLE = re.compile('[\x7f-\x9f\ufeff\ufffe\uffff\u2028\u2029]')
_PLAIN_KEY = re.compile(r'[A-Za-z][A-Za-z0-9_./-]*')
# what YAML 1.1 reads as a bool or null when it is not quoted
_YAML_WORDS = frozenset({'y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false',
                         'null'})


def yaml_string(text: str) -> str:
    """``text`` as a double-quoted YAML scalar, read back exactly."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _NOT_PRINTABLE.sub(lambda m: f'\\u{ord(m[0]):04x}', quoted)


def _yaml_scalar(value: Yaml) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN_KEY.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return yaml_string(value)
    return '{}' if isinstance(value, Mapping) else '[]'


def _yaml_lines(value: Yaml, indent: int = 0) -> list[str]:
    """Block-style YAML for nested mappings, sequences and scalars."""
    pad = ' ' * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = _yaml_scalar(key)
            if isinstance(item, (Mapping, list, tuple)) and item:
                lines.append(f'{pad}{name}:')
                lines += _yaml_lines(item, indent + 2)
            else:
                lines.append(f'{pad}{name}: {_yaml_scalar(item)}')
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                nested = _yaml_lines(item, indent + 2)
                nested[0] = f'{pad}- {nested[0].lstrip()}'
                lines += nested
            else:
                lines.append(f'{pad}- {_yaml_scalar(item)}')
    else:
        lines.append(pad + _yaml_scalar(value))
    return lines


# the environment variable a CronJob's container finds its URL in
_URL_VARIABLE = 'ONECRON_URL'

# the container's shell script: printf is a shell builtin (dash, bash,
# BusyBox ash), so the URL reaches no process's arguments, and curl reads
# it as a config file on stdin
_CURL_FROM_ENV = ("printf 'url = \"%s\"\\n' \"${variable}\" | curl "
                  '--fail-with-body --silent --show-error --request POST '
                  '--max-time {max_time} --config -')


def kubernetes(jobs: Iterable[JobCall], *, source: str,
               image: str = 'curlimages/curl:8.10.1',
               starting_deadline: int = 300, history_limit: int = 3,
               backoff_limit: int = 0) -> Export:
    """A ``Secret`` with the job URLs and one ``batch/v1`` CronJob per
    scheduled job, as multi-document YAML.

    Each CronJob calls its job's URL with curl, failing on a non-2xx
    answer, in the job's zone (``spec.timeZone``, Kubernetes 1.27+), one
    at a time (``concurrencyPolicy: Forbid``). The URL is not in the spec:
    the container reads it from the Secret (one key per CronJob, named as
    it) into ``$ONECRON_URL`` and hands it to curl on stdin, so neither
    the CronJob nor the container's command line shows it. The Secret is
    named ``onecron-`` and ``source`` (the APP) as a DNS label, and comes
    first; ``source`` also goes in the header comment.
    """
    planned, skipped = _plan(
        jobs, lambda schedule: cron_expression(schedule,
                                               dialect='kubernetes'))
    names = unique_names([job.name for job, _ in planned], dns_label,
                         max_length=52)
    secret = unique_names([source], lambda text: f'onecron-{dns_label(text)}',
                          max_length=63)[source]
    parts = [f'# Kubernetes CronJobs for the onecron jobs of '
             f'{_one_line(source)}.\n'
             f'# The Secret {secret} holds their signed URLs: whoever can '
             f'read it can run the jobs.\n'
             + _skipped_comments(skipped)]
    labels = {'app.kubernetes.io/managed-by': 'onecron'}
    if planned:
        document: dict[str, Yaml] = {
            'apiVersion': 'v1',
            'kind': 'Secret',
            'metadata': {'name': secret, 'labels': labels},
            'type': 'Opaque',
            'stringData': {names[job.name]: url for job, url in planned},
        }
        parts.append('---\n# the URLs of the CronJobs below, one per key\n'
                     + '\n'.join(_yaml_lines(document)) + '\n')
    for job, _ in planned:
        assert job.schedule is not None
        expression, zone = cron_expression(job.schedule,
                                           dialect='kubernetes')
        script = _CURL_FROM_ENV.format(variable=_URL_VARIABLE,
                                       max_time=job.max_time)
        document = {
            'apiVersion': 'batch/v1',
            'kind': 'CronJob',
            'metadata': {'name': names[job.name], 'labels': labels,
                         'annotations': {'onecron/job': job.name}},
            'spec': {
                'schedule': expression,
                'timeZone': zone,
                'concurrencyPolicy': 'Forbid',
                'startingDeadlineSeconds': starting_deadline,
                'successfulJobsHistoryLimit': history_limit,
                'failedJobsHistoryLimit': history_limit,
                'jobTemplate': {'spec': {
                    'backoffLimit': backoff_limit,
                    'template': {
                        'metadata': {'labels': labels},
                        'spec': {
                            'restartPolicy': 'Never',
                            'containers': [{
                                'name': 'curl',
                                'image': image,
                                'command': ['sh', '-c', script],
                                'env': [{
                                    'name': _URL_VARIABLE,
                                    'valueFrom': {'secretKeyRef': {
                                        'name': secret,
                                        'key': names[job.name]}},
                                }],
                            }],
                        },
                    },
                }},
            },
        }
        parts.append(f'---\n# {_about(job)}\n'
                     + '\n'.join(_yaml_lines(document)) + '\n')
    return Export((('onecron-cronjobs.yaml', ''.join(parts)),),
                  tuple(skipped))


# -- systemd ------------------------------------------------------------------

_SYSTEMD_SAFE = re.compile(r'[A-Za-z0-9_./:?=&+,@~-]+')


def systemd_word(text: str) -> str:
    """``text`` as one word of ``ExecStart=``: specifiers (``%``) and
    variables (``$``) escaped, quoted unless plainly safe."""
    text = text.replace('%', '%%').replace('$', '$$')
    if _SYSTEMD_SAFE.fullmatch(text.replace('%%', '_').replace('$$', '_')):
        return text
    escaped = text.replace('\\', '\\\\').replace('"', '\\"')
    return f'"{escaped}"'


def systemd(jobs: Iterable[JobCall], *, source: str, config_dir: str,
            randomized_delay: int | None = None) -> Export:
    """A ``.service`` (curl, Type=oneshot) and a ``.timer`` per job.

    The timer fires at the ``OnCalendar=`` values of the schedule, to the
    second (``AccuracySec=1s``), and catches up a run missed while the
    machine was off (``Persistent=true``). The service runs
    ``curl -K CONFIG``: the job's URL is in the curl config file
    ``onecron-NAME.curlrc`` in ``config_dir`` (an absolute path), given in
    :attr:`Export.configs`, never on the command line.

    :raises ValueError: for a relative ``config_dir``
    """
    _check_config_dir(config_dir)
    planned, skipped = _plan(jobs, on_calendar)
    names = unique_names([job.name for job, _ in planned], _unit_name,
                         max_length=200)
    files: list[tuple[str, str]] = []
    configs: list[tuple[str, str]] = []
    for job, url in planned:
        assert job.schedule is not None
        unit = f'onecron-{names[job.name]}'
        title = _one_line(job.name).replace('%', '%%')
        config = posixpath.join(config_dir, _config_name(names[job.name]))
        configs.append((_config_name(names[job.name]),
                        curl_config(url, job=job.name)))
        files.append((f'{unit}.service', (
            f'# {_about(job)}\n'
            f'# Generated by onecron from {_one_line(source)}.\n'
            f"# curl reads the job's signed URL from {config}: whoever "
            f'can read that file can run the job.\n'
            '[Unit]\n'
            f'Description=onecron job {title}\n'
            'Wants=network-online.target\n'
            'After=network-online.target\n\n'
            '[Service]\n'
            'Type=oneshot\n'
            f'ExecStart=/usr/bin/curl -fsS -X POST --max-time {job.max_time} '
            f'-K {systemd_word(config)}\n')))
        calendar = ''.join(f'OnCalendar={event}\n'
                           for event in on_calendar(job.schedule))
        delay = ('' if randomized_delay is None
                 else f'RandomizedDelaySec={randomized_delay}\n')
        files.append((f'{unit}.timer', (
            f'# {_about(job)}\n'
            '[Unit]\n'
            f'Description=Run onecron job {title} on its schedule\n\n'
            '[Timer]\n'
            f'{calendar}'
            'AccuracySec=1s\n'
            f'{delay}'
            'Persistent=true\n'
            f'Unit={unit}.service\n\n'
            '[Install]\n'
            'WantedBy=timers.target\n')))
    return Export(tuple(files), tuple(skipped), tuple(configs))


# -- cron ---------------------------------------------------------------------

def _cron_quoted(text: str) -> str:
    """``text`` single-quoted for sh, ``%`` escaped (cron ends the command
    at an unescaped ``%``)."""
    quoted = "'" + text.replace("'", "'\"'\"'") + "'"
    return quoted.replace('%', '\\%')


def crontab_command(url: str, max_time: int) -> str:
    """The curl command of a crontab line calling ``url``: URL
    single-quoted, ``%`` escaped (cron ends the command at an unescaped
    ``%``).

    This puts the URL on curl's command line, where every local user can
    read it; :func:`crontab` uses :func:`crontab_config_command` instead.
    """
    return (f'curl -fsS -X POST --max-time {max_time} {_cron_quoted(url)} '
            '>/dev/null')


def crontab_config_command(config: str, max_time: int) -> str:
    """The curl command of a crontab line that reads its URL from the curl
    config file ``config``: the path single-quoted, ``%`` escaped."""
    return (f'curl -fsS -X POST --max-time {max_time} '
            f'-K {_cron_quoted(config)} >/dev/null')


def crontab(jobs: Iterable[JobCall], *, source: str,
            config_dir: str) -> Export:
    """Crontab lines grouped by ``CRON_TZ=`` zone.

    Each line runs ``curl -K CONFIG``: the job's URL is in the curl config
    file ``onecron-NAME.curlrc`` in ``config_dir`` (an absolute path),
    given in :attr:`Export.configs`, never on the command line.

    ``CRON_TZ`` is read by cronie and most current crons, but not by
    Debian's cron, which uses the system's zone; it also applies to the
    lines after these, so keep them at the end of a crontab.

    :raises ValueError: for a relative ``config_dir``
    """
    _check_config_dir(config_dir)
    planned, skipped = _plan(jobs, cron_expression)
    names = unique_names([job.name for job, _ in planned], _unit_name,
                         max_length=200)
    by_zone: dict[str, list[str]] = {}
    configs: list[tuple[str, str]] = []
    for job, url in planned:
        assert job.schedule is not None
        expression, zone = cron_expression(job.schedule)
        config = posixpath.join(config_dir, _config_name(names[job.name]))
        configs.append((_config_name(names[job.name]),
                        curl_config(url, job=job.name)))
        by_zone.setdefault(zone, []).append(
            f'# {_about(job)}\n{expression} '
            f'{crontab_config_command(config, job.max_time)}\n')
    text = (f'# crontab lines for the onecron jobs of {_one_line(source)}.\n'
            f"# curl reads each job's signed URL from a file in "
            f'{_one_line(config_dir)}: whoever can read those files can run '
            f'the jobs.\n' + _skipped_comments(skipped)
            + ''.join(f'\nCRON_TZ={zone}\n' + ''.join(lines)
                      for zone, lines in sorted(by_zone.items())))
    return Export((('onecron.crontab', text),), tuple(skipped),
                  tuple(configs))
