"""Tests for onecron.cron: parsing cron expressions, macros and keywords."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from onecron.errors import InvalidSchedule
from onecron.schedule.cron import (
    MACROS,
    CronExpression,
    fields_from_keywords,
    parse_cron,
    parse_every,
)
from onecron.schedule.rules import Schedule
from tests.test_schedule import FIELDS, check_parsed

ALL_WEEKDAYS = frozenset(range(7))

PARSED = [
    # expression, attribute, expected value
    ('*/15 * * * *', 'minutes', (0, 15, 30, 45)),
    ('5-10/2 * * * *', 'minutes', (5, 7, 9)),
    ('50/5 * * * *', 'minutes', (50, 55)),
    ('3,1,2,2 * * * *', 'minutes', (1, 2, 3)),
    ('07 * * * *', 'minutes', (7,)),
    ('0 22-23,0-1 * * *', 'hours', (0, 1, 22, 23)),
    ('0 0-23/6 * * *', 'hours', (0, 6, 12, 18)),
    ('0 0 1-7,L * *', 'days', frozenset(range(1, 8))),
    ('0 0 * jan-mar/2 *', 'months', frozenset({1, 3})),
    ('0 0 * JAN,Jul,dec *', 'months', frozenset({1, 7, 12})),
    ('0 0 * * MON-FRI', 'weekdays', frozenset(range(1, 6))),
    ('0 0 * * 7', 'weekdays', frozenset({0})),
    ('0 0 * * 5-7', 'weekdays', frozenset({5, 6, 0})),
    ('0 0 * * SAT-SUN', 'weekdays', frozenset({6, 0})),
    ('0 0 * * SUN-TUE', 'weekdays', frozenset({0, 1, 2})),
    ('0 0 * * */2', 'weekdays', frozenset({0, 2, 4, 6})),
    ('0 0 * * ?', 'weekdays', ALL_WEEKDAYS),
    ('0 0 ? * 1', 'days', frozenset(range(1, 32))),
    ('0 0 L * *', 'last_day', True),
    ('0 0 lw * *', 'last_workday', True),
    ('0 0 15W,1w,L * *', 'nearest_workdays', frozenset({1, 15})),
    ('0 0 * * 1#2,FRI#3,7#1', 'nth_weekdays',
     frozenset({(1, 2), (5, 3), (0, 1)})),
    ('0 0 * * 5L,sunL', 'last_weekdays', frozenset({5, 0})),
    ('0 0 * * 1#2', 'weekdays', frozenset()),
    ('30 */10 * * * *', 'seconds', (30,)),
    ('*/20 * * * * *', 'seconds', (0, 20, 40)),
    ('*/20 * * * *', 'seconds', (0,)),
]

# Vixie cron and cronsim: a step past the end of its range is valid and
# keeps the range's first value
VIXIE_STEPS = [
    ('*/60 * * * * *', 'seconds', (0,)),
    ('7/99 * * * * *', 'seconds', (7,)),
    ('*/90 * * * *', 'minutes', (0,)),
    ('*/45 * * * *', 'minutes', (0, 45)),
    ('10-20/50 * * * *', 'minutes', (10,)),
    ('50/20 * * * *', 'minutes', (50,)),
    ('0 */24 * * *', 'hours', (0,)),
    ('0 */1000 * * *', 'hours', (0,)),
    ('0 0 */30 * *', 'days', frozenset({1, 31})),
    ('0 0 */31 * *', 'days', frozenset({1})),
    ('0 0 */45 * *', 'days', frozenset({1})),
    ('0 0 */100 * *', 'days', frozenset({1})),
    ('0 0 */0100 * *', 'days', frozenset({1})),
    ('0 0 */100,1-7 * *', 'days', frozenset(range(1, 8))),
    ('0 0 15/20 * *', 'days', frozenset({15})),
    ('0 0 * */12 *', 'months', frozenset({1})),
    ('0 0 * JUN/9 *', 'months', frozenset({6})),
    ('0 0 * * */7', 'weekdays', frozenset({0})),
    ('0 0 * * */8', 'weekdays', frozenset({0})),
    ('0 0 * * */100', 'weekdays', frozenset({0})),
    ('0 0 * * MON-FRI/10', 'weekdays', frozenset({1})),
    ('0 0 */' + '9' * 5000 + ' * *', 'days', frozenset({1})),
]


@pytest.mark.parametrize('expr, attribute, expected', VIXIE_STEPS,
                         ids=[row[0][:24] for row in VIXIE_STEPS])
def test_steps_past_the_range(expr: str, attribute: str,
                              expected: object) -> None:
    """A step larger than its field's range keeps the first value."""
    assert getattr(parse_cron(expr), attribute) == expected


def test_step_past_the_range_in_keywords() -> None:
    """The keyword form takes the same steps as the text."""
    assert fields_from_keywords(day='*/100') == ('0', '0', '*/100', '*', '*')


@pytest.mark.parametrize('expr, attribute, expected', PARSED,
                         ids=[f'{row[0]}:{row[1]}' for row in PARSED])
def test_parsed_values(expr: str, attribute: str, expected: object) -> None:
    """Items, ranges, steps, names and specials give the expected values."""
    assert getattr(parse_cron(expr), attribute) == expected


RESTRICTED = [
    # expression, day restricted, weekday restricted
    ('0 0 * * *', False, False),
    ('0 0 1 * *', True, False),
    ('0 0 * * 1', False, True),
    ('0 0 1 * 1', True, True),
    ('0 0 */2 * 1', False, True),
    ('1 1 */100,1-7 * MON', False, True),
    ('0 0 ? * 1', False, True),
    ('0 0 1 * ?', True, False),
    ('0 0 L * 5L', True, True),
]


@pytest.mark.parametrize('expr, day, weekday', RESTRICTED,
                         ids=[row[0] for row in RESTRICTED])
def test_restricted_fields(expr: str, day: bool, weekday: bool) -> None:
    """A field is restricted when its text starts with neither * nor ?."""
    cron = parse_cron(expr)
    assert (cron.day_restricted, cron.weekday_restricted) == (day, weekday)


@pytest.mark.parametrize('macro, fields', sorted(MACROS.items()),
                         ids=sorted(MACROS))
def test_macros(macro: str, fields: str) -> None:
    """Each macro, in any case, is the same as its five fields."""
    assert parse_cron(macro) == parse_cron(fields)
    assert parse_cron(macro.upper()) == parse_cron(fields)
    assert parse_cron(macro).text == fields


def test_normalized_text() -> None:
    """Whitespace collapses to single spaces and names are upper case."""
    cron = parse_cron('  30\t8 *  * mon-fri ')
    assert cron.text == '30 8 * * MON-FRI'
    assert cron.fields == ('30', '8', '*', '*', 'MON-FRI')
    assert parse_cron(cron.text) == cron


def test_cron_expression_is_frozen() -> None:
    """A parsed expression cannot change and hashes by value."""
    cron = parse_cron('0 0 * * *')
    with pytest.raises(AttributeError):
        cron.minutes = (1,)  # type: ignore[misc]
    assert hash(cron) == hash(parse_cron('0 0 * * *'))


INVALID = [
    # expression, field, words the message must contain
    ('* * * *', 'expr', 'expected 5 or 6 fields, got 4'),
    ('* * * * * * *', 'expr', 'expected 5 or 6 fields, got 7'),
    ('', 'expr', 'got 0'),
    ('60 * * * *', 'minute', 'minute 60 is out of range 0-59'),
    ('0 24 * * *', 'hour', 'hour 24 is out of range 0-23'),
    ('0 25 * * *', 'hour', 'hour 25 is out of range 0-23'),
    ('0 0 0 * *', 'day', 'day 0 is out of range 1-31'),
    ('0 0 32 * *', 'day', 'day 32 is out of range 1-31'),
    ('0 0 * 13 *', 'month', 'month 13 is out of range 1-12'),
    ('0 0 * 0 *', 'month', 'month 0 is out of range 1-12'),
    ('0 0 * * 8', 'weekday', 'weekday 8 is out of range 0-7'),
    ('60 * * * * *', 'second', 'second 60 is out of range 0-59'),
    ('*/0 * * * *', 'minute', "minute step 0 in '*/0' must be at least 1"),
    ('*/00 * * * *', 'minute', "minute step 0 in '*/00' must be at least 1"),
    ('0 0 */0 * *', 'day', "day step 0 in '*/0' must be at least 1"),
    ('1-5/0 * * * *', 'minute', 'minute step 0'),
    ('0 0 * * */0', 'weekday', 'weekday step 0'),
    ('*/x * * * *', 'minute', "minute '*/x' is not valid"),
    ('*/-1 * * * *', 'minute', "minute '*/-1' is not valid"),
    ('*/1.5 * * * *', 'minute', "minute '*/1.5' is not valid"),
    ('*/\u00b2 * * * *', 'minute', 'is not valid'),
    ('0 0 */1_0 * *', 'day', "day '*/1_0' is not valid"),
    ('*/ * * * *', 'minute', "no step after '/'"),
    ('*/5x * * * *', 'minute', "minute '*/5x' is not valid"),
    ('5-1 * * * *', 'minute', "minute range '5-1' runs backwards"),
    ('0 0 * * FRI-MON', 'weekday', 'runs backwards'),
    ('1_0 * * * *', 'minute', "minute '1_0' is not valid"),
    ('1\u00b2 * * * *', 'minute', "'1\u00b2' is not valid"),
    ('\u0661 * * * *', 'minute', 'is not valid'),
    ('8.5 * * * *', 'minute', "minute '8.5' is not valid"),
    ('+1 * * * *', 'minute', "minute '+1' is not valid"),
    ('-1 * * * *', 'minute', "minute '-1' is not valid"),
    ('1,,2 * * * *', 'minute', "minute '1,,2' has an empty item"),
    ('1, * * * *', 'minute', 'empty item'),
    ('? * * * *', 'minute', "minute '?' is not valid"),
    ('L * * * *', 'minute', "minute 'L' is not a number 0-59"),
    ('0 0 1,? * *', 'day', "day '?' is not valid"),
    ('0 0 32W * *', 'day', 'day 32 is out of range 1-31'),
    ('0 0 0W * *', 'day', 'day 0 is out of range 1-31'),
    ('0 0 MON * *', 'day', "day 'MON' is not a number 1-31"),
    ('0 0 * FOO *', 'month', "month 'FOO' is not a name JAN-DEC or a "
     'number 1-12'),
    ('0 0 * * FOO', 'weekday', "weekday 'FOO' is not a name SUN-SAT"),
    ('0 0 * * 1#6', 'weekday', "weekday '1#6': occurrence 6 is out of "
     'range 1-5'),
    ('0 0 * * 1#0', 'weekday', 'occurrence 0'),
    ('0 0 * * 8#1', 'weekday', 'weekday 8 is out of range 0-7'),
    ('0 0 * * L', 'weekday', "weekday 'L'"),
    ('0 0 * * 8L', 'weekday', 'weekday 8 is out of range 0-7'),
    ('@fortnightly', 'expr', "unknown macro '@fortnightly'"),
]


@pytest.mark.parametrize('expr, field, words', INVALID,
                         ids=[row[0] or 'empty' for row in INVALID])
def test_invalid_expressions(expr: str, field: str, words: str) -> None:
    """Bad text raises InvalidSchedule naming the field, value and range."""
    with pytest.raises(InvalidSchedule) as info:
        parse_cron(expr)
    assert words in str(info.value)
    assert info.value.field == field


@pytest.mark.parametrize('expr, field', [
    ('9' * 5000 + ' * * * *', 'minute'),
    ('0 0 1-' + '9' * 5000 + ' * *', 'day'),
    ('0 0 ' + '9' * 5000 + 'W * *', 'day'),
    ('0 0 * * 1#' + '9' * 5000, 'weekday'),
], ids=['value', 'range-end', 'nearest-weekday', 'occurrence'])
def test_huge_numbers(expr: str, field: str) -> None:
    """Thousands of digits are out of range, not a bare ValueError from
    int()."""
    with pytest.raises(InvalidSchedule, match='out of range') as info:
        parse_cron(expr)
    assert info.value.field == field


def test_invalid_schedule_is_a_value_error() -> None:
    """Callers that catch ValueError catch bad schedules too."""
    with pytest.raises(ValueError):
        parse_cron('0 25 * * *')


@pytest.mark.parametrize('value', [5, None, b'* * * * *', ['*'] * 5],
                         ids=['int', 'none', 'bytes', 'list'])
def test_non_str_expression(value: object) -> None:
    """Only a str is an expression."""
    with pytest.raises(InvalidSchedule, match='must be a str'):
        parse_cron(value)  # type: ignore[arg-type]


# --- @every ---

EVERY = [
    ('@every 1h30m', timedelta(minutes=90)),
    ('@every 90s', timedelta(seconds=90)),
    ('@every 15m', timedelta(minutes=15)),
    ('@EVERY 24h', timedelta(hours=24)),
    ('@every 1h1m1s', timedelta(seconds=3661)),
    ('  @every   2h ', timedelta(hours=2)),
]


@pytest.mark.parametrize('expr, interval', EVERY,
                         ids=[row[0].strip() for row in EVERY])
def test_every(expr: str, interval: timedelta) -> None:
    """``@every`` durations in h, m and s are fixed intervals."""
    assert parse_every(expr) == interval


@pytest.mark.parametrize('expr', ['@every', '@every 0s', '@every 0h0m',
                                  '@every 1d', '@every 1.5h', '@every 30',
                                  '@every 1m1h', '@every -5m', '@every 5 m'])
def test_bad_every(expr: str) -> None:
    """A missing, zero or malformed duration raises InvalidSchedule."""
    with pytest.raises(InvalidSchedule) as info:
        parse_every(expr)
    assert info.value.field == 'every'


def test_every_is_not_a_cron_expression() -> None:
    """Other text is not ``@every``; ``@every`` is not a cron macro."""
    assert parse_every('@daily') is None
    assert parse_every('*/5 * * * *') is None
    with pytest.raises(InvalidSchedule, match='unknown macro'):
        parse_cron('@every 5m')


# --- keywords ---

KEYWORDS = [
    ({'hour': 8}, '0 8 * * *'),
    ({'minute': 30}, '30 * * * *'),
    ({'hour': 8, 'minute': 30}, '30 8 * * *'),
    ({'hour': '8'}, '0 8 * * *'),
    ({'hour': ' */2 '}, '0 */2 * * *'),
    ({'minute': '0,30', 'hour': '9-17/2'}, '0,30 9-17/2 * * *'),
    ({'day': 1}, '0 0 1 * *'),
    ({'day': 'LW'}, '0 0 LW * *'),
    ({'weekday': 1}, '0 0 * * 1'),
    ({'weekday': 'fri#3', 'hour': 18}, '0 18 * * fri#3'),
    ({'month': 6}, '0 0 1 6 *'),
    ({'month': 'jan', 'day': 15}, '0 0 15 jan *'),
    ({'month': 6, 'weekday': 'MON'}, '0 0 * 6 MON'),
    ({'day': 1, 'minute': 5}, '5 * 1 * *'),
]


@pytest.mark.parametrize('keywords, fields', KEYWORDS,
                         ids=[row[1] for row in KEYWORDS])
def test_keyword_fields(keywords: dict[str, object], fields: str) -> None:
    """Unset fields after the last given one take their minimum; unset
    fields before it are ``*``; weekday never gets a default value."""
    assert ' '.join(fields_from_keywords(**keywords)) == fields


BAD_KEYWORDS = [
    ({}, 'expr', 'no schedule given'),
    ({'hour': 25}, 'hour', 'hour 25 is out of range 0-23'),
    ({'hour': -1}, 'hour', 'hour -1 is out of range 0-23'),
    ({'minute': 60}, 'minute', 'minute 60 is out of range 0-59'),
    ({'hour': True}, 'hour', 'hour True must be an int or a str'),
    ({'hour': 8.5}, 'hour', 'hour 8.5 must be an int or a str'),
    ({'hour': [8]}, 'hour', 'must be an int or a str'),
    ({'hour': ''}, 'hour', 'must be one cron field'),
    ({'hour': '1 2'}, 'hour', 'must be one cron field'),
    ({'minute': '*/0'}, 'minute', "minute step 0 in '*/0' must be at least 1"),
    ({'minute': '1_0'}, 'minute', "minute '1_0' is not valid"),
    ({'month': 'foo'}, 'month', "month 'foo' is not a name"),
    ({'weekday': '1#6'}, 'weekday', 'occurrence 6'),
    ({'day': 'L', 'weekday': 'x'}, 'weekday', "weekday 'x'"),
]


@pytest.mark.parametrize('keywords, field, words', BAD_KEYWORDS,
                         ids=[f'{row[1]}:{row[2][:24]}'
                              for row in BAD_KEYWORDS])
def test_bad_keywords(keywords: dict[str, object], field: str,
                      words: str) -> None:
    """A bad keyword raises InvalidSchedule naming that keyword."""
    with pytest.raises(InvalidSchedule) as info:
        fields_from_keywords(**keywords)
    assert words in str(info.value)
    assert info.value.field == field


# --- properties ---

def _field(low: int, high: int,
           names: tuple[str, ...] = ()) -> st.SearchStrategy[str]:
    value = st.integers(low, high).map(str)
    if names:
        value = st.one_of(value, st.sampled_from(names))

    @st.composite
    def item(draw: st.DrawFn) -> str:
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, high - low + 40))  # past the end too
        return draw(st.sampled_from([
            str(a), f'{a}-{b}', f'*/{step}', f'{a}-{b}/{step}',
            f'{a}/{step}', '*', draw(value)]))

    return st.lists(item(), min_size=1, max_size=4).map(','.join)


VALID = st.tuples(
    _field(0, 59), _field(0, 23), _field(1, 31),
    _field(1, 12, ('JAN', 'feb', 'Dec')),
    _field(0, 7, ('SUN', 'mon', 'Sat'))).map(' '.join)


@settings(max_examples=300, deadline=None)
@given(VALID)
def test_generated_expressions_parse(expr: str) -> None:
    """Expressions built from valid items parse, stay in range, and their
    normalized text parses to the same thing."""
    cron = parse_cron(expr)
    assert cron.minutes and set(cron.minutes) <= set(range(60))
    assert cron.hours and set(cron.hours) <= set(range(24))
    assert cron.days and cron.days <= set(range(1, 32))
    assert cron.months and cron.months <= set(range(1, 13))
    assert cron.weekdays and cron.weekdays <= set(range(7))
    assert list(cron.minutes) == sorted(cron.minutes)
    assert parse_cron(cron.text) == cron


#: texts that must parse, also given as explicit examples to the
#: properties below, so that a parser refusing everything fails them
CRON_PARSES = ['0 0 * * *', ' 0  12 L * * ', '@Weekly', '*/12 1 L * *',
               '0 0 1 jan MON', '7 12 31 * 1#1', '0 0 30 2 *',
               '*/20 1 * * * *']


def _check_cron_text(text: str) -> None:
    """``text`` parses to an expression that round-trips through its
    normalized text and, unless it can never fire, builds a schedule whose
    fires its fields allow; or it raises InvalidSchedule naming a field
    (never for the texts of ``CRON_PARSES``)."""
    try:
        cron = parse_cron(text)
    except InvalidSchedule as error:
        assert text not in CRON_PARSES, error
        assert error.field in FIELDS
        return
    assert isinstance(cron, CronExpression)
    assert parse_cron(cron.text) == cron
    assert cron.minutes and cron.hours and cron.months
    try:
        schedule = Schedule(cron.text)
    except InvalidSchedule as error:  # a day that never comes: 30 2
        assert error.field == 'day' and 'never fire' in str(error)
        return
    assert schedule.cron == cron
    check_parsed(schedule)


@settings(max_examples=500, deadline=None)
@given(st.text())
@example('0 0 * * *')
@example(' 0  12 L * * ')
@example('@Weekly')
@example('0 0 30 2 *')
def test_any_text_parses_or_raises_invalid_schedule(text: str) -> None:
    """Arbitrary text parses to an expression that round-trips and fires
    at times its fields allow, or raises InvalidSchedule naming a field."""
    _check_cron_text(text)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(
    ['*', '?', '/', '-', ',', '#', 'L', 'W', '0', '1', '7', '12', '31',
     '60', '\u00b2', '_', '.', 'MON', 'jan', ' ', '@daily']),
    max_size=14).map(''.join))
@example('*/12 1 L * *')
@example('0 0 1 jan MON')
@example('7 12 31 * 1#1')
@example('*/20 1 * * * *')
def test_cron_tokens_parse_or_raise_invalid_schedule(text: str) -> None:
    """Text made of cron tokens parses to an expression that round-trips
    and fires at times its fields allow, or raises InvalidSchedule."""
    _check_cron_text(text)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.integers(-100, 100), st.text(max_size=8),
                 st.floats(), st.booleans(), st.none()))
def test_keywords_parse_or_raise_invalid_schedule(value: object) -> None:
    """Any keyword value gives fields or raises InvalidSchedule."""
    try:
        fields = fields_from_keywords(hour=value)
    except InvalidSchedule as error:
        assert error.field in ('hour', 'expr')
    else:
        assert len(fields) == 5
