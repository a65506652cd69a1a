"""Cron expressions: the text parsed once into frozen sets of allowed values.

Everything here is pure: no clock, no zone, no I/O. Parsing is strict so a
bad schedule fails when it is registered, with a message that names the
field, the value and the allowed range (``hour 25 is out of range 0-23``).

The grammar is Vixie cron's with the common extensions: an optional leading
seconds field, month and weekday names, ``?``, the Quartz day specials ``L``,
``LW``, ``nW``, ``n#k`` and ``nL``, the ``@daily``-style macros and Revel's
``@every <duration>``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from onecron.errors import InvalidSchedule

__all__ = ['CronExpression', 'MACROS', 'fields_from_keywords', 'parse_cron',
           'parse_every']

#: Macros and the five fields each one stands for.
MACROS: Mapping[str, str] = {
    '@yearly': '0 0 1 1 *',
    '@annually': '0 0 1 1 *',
    '@monthly': '0 0 1 * *',
    '@weekly': '0 0 * * 0',
    '@daily': '0 0 * * *',
    '@midnight': '0 0 * * *',
    '@hourly': '0 * * * *',
}

_MONTH_NAMES = ('JAN', 'FEB', 'MAR', 'APR', 'MAY', 'JUN',
                'JUL', 'AUG', 'SEP', 'OCT', 'NOV', 'DEC')
_WEEKDAY_NAMES = ('SUN', 'MON', 'TUE', 'WED', 'THU', 'FRI', 'SAT')


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Mapping[str, int]


_SECOND = _Field('second', 0, 59, {})
_MINUTE = _Field('minute', 0, 59, {})
_HOUR = _Field('hour', 0, 23, {})
_DAY = _Field('day', 1, 31, {})
_MONTH = _Field('month', 1, 12,
                {name: i for i, name in enumerate(_MONTH_NAMES, 1)})
# 0 and 7 are both Sunday, as in Vixie cron
_WEEKDAY = _Field('weekday', 0, 7,
                  {name: i for i, name in enumerate(_WEEKDAY_NAMES)})

# re.ASCII: int() alone would accept '1_0', '²' and other Unicode digits
_FLAGS = re.ASCII | re.IGNORECASE
_VALUE = r'[0-9]+|[a-z]+'
_ITEM = re.compile(rf'(?:(\*)|({_VALUE})(?:-({_VALUE}))?)(?:/([0-9]*))?',
                   _FLAGS)
_NEAREST_WEEKDAY = re.compile(r'([0-9]+)W', _FLAGS)
_NTH_WEEKDAY = re.compile(rf'({_VALUE})#([0-9]+)', _FLAGS)
_LAST_WEEKDAY = re.compile(r'([0-9]+|[a-z]{3})L', _FLAGS)
_DURATION = re.compile(r'(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?', _FLAGS)


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression: for each field, the values it allows.

    Weekdays use cron numbering, 0 = Sunday to 6 = Saturday (a 7 in the text
    is stored as 0). ``day_restricted`` and ``weekday_restricted`` follow
    Vixie cron: a field is restricted when its text does not start with
    ``*`` (or ``?``); when both are, a day matching either one runs,
    otherwise a day must match both.
    """

    #: the expression as normalized text: single spaces, names upper case
    text: str
    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    #: plain days of the month (``*`` gives 1-31)
    days: frozenset[int]
    months: frozenset[int]
    #: plain weekdays, 0 = Sunday (``*`` gives 0-6)
    weekdays: frozenset[int]
    #: ``L`` in the day field: the last day of the month
    last_day: bool = False
    #: ``LW``: the last weekday (Monday to Friday) of the month
    last_workday: bool = False
    #: ``nW``: the weekday nearest day n, within the same month
    nearest_workdays: frozenset[int] = frozenset()
    #: ``n#k``: (weekday, k) for the k-th such weekday of the month
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    #: ``nL``: the last such weekday of the month
    last_weekdays: frozenset[int] = frozenset()
    day_restricted: bool = False
    weekday_restricted: bool = False

    @property
    def wall_clock(self) -> bool:
        """True when minute and hour are both fixed (neither starts with *).

        Such a schedule names times on the wall clock, so across DST it runs
        once per named time; all others follow elapsed time.
        """
        fields = self.text.split()
        minute, hour = fields[-5], fields[-4]
        return not minute.startswith('*') and not hour.startswith('*')

    @property
    def fields(self) -> tuple[str, ...]:
        """The field texts, five or six (with seconds first)."""
        return tuple(self.text.split())


def parse_cron(expr: str) -> CronExpression:
    """Parse a cron expression of 5 or 6 fields, or a macro like ``@daily``.

    Only parses: whether the schedule can ever fire is checked by
    :func:`onecron.schedule.days.check_fires`.

    :raises InvalidSchedule: naming the field, the value and its range
    """
    if not isinstance(expr, str):
        raise InvalidSchedule(f'a cron expression must be a str, '
                              f'got {expr!r}', field='expr', value=expr)
    return _parse(expr)


# apps register the same few expressions many times ('@daily'); results
# are immutable, so they can be shared (errors are not cached)
@lru_cache(maxsize=256)
def _parse(expr: str) -> CronExpression:
    text = expr.strip()
    if text.startswith('@'):
        macro = MACROS.get(text.lower())
        if macro is None:
            known = ', '.join(sorted({*MACROS, '@every'}))
            raise InvalidSchedule(f'unknown macro {text!r}; known: {known}',
                                  field='expr', value=expr)
        text = macro
    fields = text.split()
    if len(fields) not in (5, 6):
        raise InvalidSchedule(f'expected 5 or 6 fields, got {len(fields)} '
                              f'in {expr!r}', field='expr', value=expr)
    if len(fields) == 5:
        seconds: tuple[int, ...] = (0,)
    else:
        seconds = tuple(sorted(_parse_plain(_SECOND, fields[0])))
    minute, hour, day, month, weekday = fields[-5:]
    days, day_specials = _parse_days(day)
    weekdays, nth, last = _parse_weekdays(weekday)
    return CronExpression(
        text=' '.join(field.upper() for field in fields),
        seconds=seconds,
        minutes=tuple(sorted(_parse_plain(_MINUTE, minute))),
        hours=tuple(sorted(_parse_plain(_HOUR, hour))),
        days=frozenset(days),
        months=frozenset(_parse_plain(_MONTH, month)),
        weekdays=frozenset(weekdays),
        last_day='L' in day_specials,
        last_workday='LW' in day_specials,
        nearest_workdays=frozenset(int(s[:-1]) for s in day_specials
                                   if s[:-1].isdigit()),
        nth_weekdays=frozenset(nth),
        last_weekdays=frozenset(last),
        day_restricted=not day.startswith(('*', '?')),
        weekday_restricted=not weekday.startswith(('*', '?')),
    )


def parse_every(expr: str) -> timedelta | None:
    """The interval of Revel's ``@every 1h30m``, or None for other text.

    Units are ``h``, ``m`` and ``s``, in that order, each at most once.

    :raises InvalidSchedule: for ``@every`` with a bad or zero duration
    """
    head, *rest = expr.split(None, 1) or ['']
    if head.lower() != '@every':
        return None
    duration = rest[0].strip() if rest else ''
    match = _DURATION.fullmatch(duration)
    if not duration or match is None:
        raise InvalidSchedule(f'@every needs a duration like 90s, 15m or '
                              f'1h30m (units h, m, s), got {duration!r}',
                              field='every', value=expr)
    h, m, s = (int(group or 0) for group in match.groups())
    interval = timedelta(hours=h, minutes=m, seconds=s)
    if not interval:
        raise InvalidSchedule(f'@every {duration} is zero; the interval '
                              f'must be at least 1s', field='every',
                              value=expr)
    return interval


def fields_from_keywords(*, minute: object = None, hour: object = None,
                         day: object = None, month: object = None,
                         weekday: object = None) -> tuple[str, ...]:
    """The five cron fields for the keyword form of a schedule.

    Each keyword is an int or the text of its cron field. Fields left None
    that come after the last given one in the order month, day, weekday,
    hour, minute take their minimum (``hour=8`` is once a day at 08:00, not
    sixty times); the others are ``*`` (``minute=30`` is every hour at :30).
    Weekday never defaults to a value: its "minimum" is every day.

    :raises InvalidSchedule: naming the keyword, for a bool, a float, any
        other type, or a value the field does not accept
    """
    given = {'month': month, 'day': day, 'weekday': weekday, 'hour': hour,
             'minute': minute}
    fields = {'minute': _MINUTE, 'hour': _HOUR, 'day': _DAY,
              'month': _MONTH, 'weekday': _WEEKDAY}
    order = list(given)
    last = max((i for i, name in enumerate(order)
                if given[name] is not None), default=-1)
    if last < 0:
        raise InvalidSchedule('no schedule given: pass a cron expression, '
                              'a keyword (minute, hour, day, month, '
                              'weekday) or every=timedelta', field='expr')
    minimum = {'month': '*', 'day': '1', 'weekday': '*', 'hour': '0',
               'minute': '0'}
    texts: dict[str, str] = {}
    for i, name in enumerate(order):
        value = given[name]
        if value is None:
            texts[name] = minimum[name] if i > last else '*'
        else:
            texts[name] = _keyword_text(fields[name], value)
    return (texts['minute'], texts['hour'], texts['day'], texts['month'],
            texts['weekday'])


def _keyword_text(field: _Field, value: object) -> str:
    """The field text for one keyword, checked on its own."""
    if isinstance(value, int) and not isinstance(value, bool):
        _check_range(field, value)
        return str(value)
    if not isinstance(value, str):
        raise InvalidSchedule(
            f'{field.name} {value!r} must be an int or a str like '
            f"'*', '*/n', 'a-b' or 'a,b' ({field.low}-{field.high})",
            field=field.name, value=value)
    text = value.strip()
    if not text or len(text.split()) != 1:
        raise InvalidSchedule(f'{field.name} {value!r} must be one cron '
                              f'field ({field.low}-{field.high})',
                              field=field.name, value=value)
    if field is _DAY:
        _parse_days(text)
    elif field is _WEEKDAY:
        _parse_weekdays(text)
    else:
        _parse_plain(field, text)
    return text


def _items(field: _Field, text: str) -> list[str]:
    items = text.split(',')
    if '' in items:
        raise InvalidSchedule(f'{field.name} {text!r} has an empty item',
                              field=field.name, value=text)
    return items


def _parse_plain(field: _Field, text: str) -> set[int]:
    values: set[int] = set()
    for item in _items(field, text):
        values |= _parse_item(field, item)
    return values


def _parse_days(text: str) -> tuple[set[int], set[str]]:
    """Plain days, and the specials (``L``, ``LW``, ``nW``) upper-cased."""
    if text == '?':
        return set(range(1, 32)), set()
    days: set[int] = set()
    specials: set[str] = set()
    for item in _items(_DAY, text):
        upper = item.upper()
        if upper in ('L', 'LW'):
            specials.add(upper)
        elif match := _NEAREST_WEEKDAY.fullmatch(item):
            day = _check_range(_DAY, _int(match[1]), item)
            specials.add(f'{day}W')
        else:
            days |= _parse_item(_DAY, item)
    return days, specials


def _parse_weekdays(
        text: str) -> tuple[set[int], set[tuple[int, int]], set[int]]:
    """Plain weekdays, ``n#k`` pairs and ``nL`` weekdays (7 becomes 0)."""
    if text == '?':
        return set(range(7)), set(), set()
    weekdays: set[int] = set()
    nth: set[tuple[int, int]] = set()
    last: set[int] = set()
    for item in _items(_WEEKDAY, text):
        if match := _NTH_WEEKDAY.fullmatch(item):
            k = _int(match[2])
            if not 1 <= k <= 5:
                raise InvalidSchedule(
                    f'weekday {item!r}: occurrence {k} is out of range 1-5',
                    field='weekday', value=item)
            nth.add((_value(_WEEKDAY, match[1], item) % 7, k))
        elif match := _LAST_WEEKDAY.fullmatch(item):
            last.add(_value(_WEEKDAY, match[1], item) % 7)
        else:
            weekdays |= {v % 7 for v in _parse_item(_WEEKDAY, item)}
    return weekdays, nth, last


def _parse_item(field: _Field, item: str) -> set[int]:
    """One item of a list: ``*``, ``n``, ``a-b``, ``*/n``, ``a-b/n`` or
    ``a/n``."""
    match = _ITEM.fullmatch(item)
    if match is None:
        raise InvalidSchedule(
            f"{field.name} {item!r} is not valid: expected '*', n, a-b, "
            f"*/n, a-b/n or a/n with n in {field.low}-{field.high}"
            + (f' or a name {_names(field)}' if field.names else ''),
            field=field.name, value=item)
    star, start_text, end_text, step_text = match.groups()
    if star:
        start, end = field.low, field.high
    else:
        start = _value(field, start_text, item)
        if end_text is not None:
            end = _value(field, end_text, item)
            if (field is _WEEKDAY and end == 0 < start
                    and not end_text.isdigit()):
                end = 7  # SAT-SUN reads as Saturday to Sunday
            if start > end:
                raise InvalidSchedule(
                    f'{field.name} range {item!r} runs backwards; write the '
                    f'smaller value first, within {field.low}-{field.high}',
                    field=field.name, value=item)
        elif step_text is not None:
            end = field.high  # a/n: from a to the end of the field
        else:
            end = start
    step = 1
    if step_text is not None:
        if not step_text:
            raise InvalidSchedule(f'{field.name} {item!r} has no step after '
                                  f"'/'", field=field.name, value=item)
        # as in Vixie cron and cronsim, a step past the end of the range
        # is valid and keeps only its first value: day */100 is day 1
        step = _int(step_text)
        if step < 1:
            raise InvalidSchedule(f'{field.name} step {step} in {item!r} '
                                  f'must be at least 1', field=field.name,
                                  value=item)
    return set(range(start, end + 1, step))


def _value(field: _Field, text: str, item: str) -> int:
    """A number or name of ``field``, range-checked."""
    if text.isdigit():
        return _check_range(field, _int(text), item)
    value = field.names.get(text.upper())
    if value is None:
        expected = (f'a name {_names(field)} or ' if field.names else '')
        raise InvalidSchedule(f'{field.name} {text!r} is not {expected}a '
                              f'number {field.low}-{field.high}',
                              field=field.name, value=item)
    return value


def _int(digits: str) -> int:
    """ASCII digits as an int, at most 10**100: int() refuses thousands of
    digits, and every number that large is out of every field's range and
    a step past its end."""
    digits = digits.lstrip('0') or '0'
    return int(digits) if len(digits) <= 100 else 10**100


def _check_range(field: _Field, value: int, item: object = None) -> int:
    if not field.low <= value <= field.high:
        raise InvalidSchedule(f'{field.name} {value} is out of range '
                              f'{field.low}-{field.high}', field=field.name,
                              value=value if item is None else item)
    return value


def _names(field: _Field) -> str:
    names = list(field.names)
    return f'{names[0]}-{names[-1]}'
