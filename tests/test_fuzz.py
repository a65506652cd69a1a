"""Fuzzing with hypothesis: the job endpoint and the schedule core.

Arbitrary text given to ``Schedule`` is fuzzed in
``tests/test_schedule.py::test_any_text_parses_or_raises_invalid_schedule``
(and the cron parser alone in ``tests/test_cron.py``); not repeated here.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from itsdangerous import URLSafeSerializer
from webob import Request

from onecron import CronApp, Schedule
from onecron.protocol.signing import OCCURRENCE_SALT, JobSigner

UTC = timezone.utc

# --- the job endpoint -------------------------------------------------------

SECRET = 'fuzz-secret'
PREFIX = '/cronjobs'
OCCURRENCE = datetime(2024, 5, 6, 8, 30, tzinfo=UTC)
NOW = OCCURRENCE + timedelta(seconds=12)
SIGNER = JobSigner(SECRET)
OTHER = JobSigner('another secret')
ALPHABET = ('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'
            '0123456789-_.')


def occurrence(name: str = 'job', application_id: str = 'default',
               at: datetime = OCCURRENCE, issued: datetime = NOW,
               signer: JobSigner = SIGNER) -> str:
    return signer.occurrence_token(name, application_id, at, issued=issued)


def salted(salt: str, payload: object) -> str:
    return str(URLSafeSerializer(SECRET, salt=salt).dumps(payload))


#: the tokens that run the job: only ever fuzzed after a change
VALID = [('', SIGNER.token_for('job', 'default')),
         ('', SIGNER.token_for('job')),  # names no id: the id is fixed
         ('o/', occurrence())]
#: tokens that must not run it as they are
NEAR_VALID = [
    ('', SIGNER.token_for('ghost')),  # no such job
    ('', SIGNER.token_for('job', 'other')),  # another application id
    ('', OTHER.token_for('job')),  # a foreign secret
    ('', salted('another-salt', 'job')),
    ('', salted(OCCURRENCE_SALT, 'job')),
    ('', occurrence()),  # an occurrence token where a static one goes
    ('o/', SIGNER.token_for('job')),  # and the other way round
    ('o/', occurrence(application_id='other')),
    ('o/', occurrence(at=OCCURRENCE - timedelta(days=1),
                      issued=NOW - timedelta(days=1))),
    ('o/', occurrence(at=OCCURRENCE + timedelta(hours=1),
                      issued=NOW + timedelta(hours=1))),
    ('o/', occurrence(name='ghost')),
    ('o/', occurrence(signer=OTHER)),
    ('o/', salted('cronjob-id', ['job', 'default', OCCURRENCE.isoformat(),
                                 int(NOW.timestamp())])),
]


@st.composite
def changed(draw: st.DrawFn, token: str) -> str:
    """``token`` truncated or with one character replaced.

    Never at the last character, nor by appending: base64's unused
    trailing bits, its padding and the non-ASCII characters itsdangerous
    drops let a few such variants of a valid token verify (they run the
    job, as the token itself does; they give nothing to who lacks it).
    """
    if draw(st.booleans()):
        return token[:draw(st.integers(0, len(token) - 1))]
    where = draw(st.integers(0, len(token) - 2))
    char = draw(st.sampled_from(ALPHABET).filter(
        lambda char: char != token[where]))
    return token[:where] + char + token[where + 1:]


@st.composite
def token_paths(draw: st.DrawFn) -> str:
    """A path under the prefix holding a near-valid token."""
    kind, token = draw(st.sampled_from(VALID + NEAR_VALID))
    if (kind, token) in VALID or draw(st.booleans()):
        token = draw(changed(token))
    tail = draw(st.sampled_from(['', '', '/', '/x', '//']))
    return quote(f'{PREFIX}/{kind}{token}{tail}', safe='/')


PATHS = st.one_of(
    token_paths(), token_paths(),
    st.text(max_size=40).map(lambda text: quote(f'{PREFIX}/{text}',
                                                safe='/')),
    st.sampled_from(['', '/', '/o', '/o/', '/status.json', '/jobs/job',
                     '/control/run', '/o/o/o']).map(
        lambda tail: PREFIX + tail),
    # bytes that are not UTF-8, alone or after a valid token
    st.binary(max_size=24).map(
        lambda raw: PREFIX + '/' + quote(raw, safe='/')),
    st.tuples(st.sampled_from(VALID), st.binary(min_size=1, max_size=4)).map(
        lambda pair: f'{PREFIX}/{pair[0][0]}{pair[0][1]}'
        + quote(b'\xff' + pair[1], safe='')),
)
METHODS = st.one_of(
    st.sampled_from(['GET', 'POST']),  # the ones that get past 405
    st.sampled_from(['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS',
                     'PATCH', 'TRACE']),
    st.text('ABCDEFGHIJKLMNOPQRSTUVWXYZ-', min_size=1, max_size=10))
HEADER_VALUES = st.text(st.characters(min_codepoint=32, max_codepoint=255,
                                      blacklist_characters='\x7f'),
                        max_size=60)
HEADERS = st.dictionaries(
    st.one_of(st.sampled_from([
        'X-Onecron-Run', 'X-Onecron-Trigger', 'X-Onecron-Occurrence',
        'X-Forwarded-For', 'Forwarded', 'X-Real-IP', 'Host', 'Cookie',
        'Authorization', 'Content-Type', 'Content-Length', 'Referer']),
        st.from_regex(r'X-[A-Za-z0-9-]{1,20}', fullmatch=True)),
    st.one_of(HEADER_VALUES, st.sampled_from([
        'scheduler', 'manual', OCCURRENCE.isoformat(), '127.0.0.1',
        'Basic b3BzOnB3'])),
    max_size=5)
QUERIES = st.one_of(
    st.just(''), st.sampled_from(['occurrence=nearest', 'occurrence=x',
                                  'occurrence=', 'run=1&occurrence=nearest']),
    st.text(max_size=30).map(lambda text: quote(text, safe='=&')))


class Target(NamedTuple):
    app: CronApp
    runs: list[str]


@pytest.fixture(scope='module')
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """One app for every example: a store, occurrence tokens, a clock at
    the token's occurrence, and a status page that lets nobody in."""
    path: Path = tmp_path_factory.mktemp('fuzz')
    runs: list[str] = []
    app = CronApp(secret=SECRET, enabled=False, store=str(path / 'runs'),
                  lock_dir=str(path), occurrence_tokens=True,
                  status_access=lambda request: False, clock=lambda: NOW)
    app.cronjob(minute=30, name='job', overlap='allow')(
        lambda request: runs.append(request.path))
    yield Target(app, runs)
    app.stop()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(path=PATHS, method=METHODS, headers=HEADERS, query=QUERIES,
       body=st.binary(max_size=64),
       remote_addr=st.sampled_from(['127.0.0.1', '10.0.0.5', '::1', 'x']))
def test_no_request_under_the_prefix_runs_a_job_or_fails(
        target: Target, path: str, method: str, headers: dict[str, str],
        query: str, body: bytes, remote_addr: str) -> None:
    """Arbitrary paths, methods, headers, query strings and bodies under
    the prefix, near-valid tokens among them, get 400, 403, 404 or 405:
    never a 5xx, never a run, nothing written down."""
    request = Request.blank(path + ('?' + query if query else ''),
                            method=method, headers=headers,
                            remote_addr=remote_addr, body=body)
    response = request.get_response(target.app)
    assert response.status_int in (400, 403, 404, 405), response.status
    assert target.runs == []
    store = target.app.store
    assert store is not None
    assert store.runs('default') == []
    assert store.claimed('default', 'job', OCCURRENCE - timedelta(days=7),
                         OCCURRENCE + timedelta(days=7)) == set()


def test_the_fuzzed_tokens_are_the_ones_that_run(tmp_path: Path) -> None:
    """The fuzz starts from tokens that work: unchanged, each valid one
    runs the job on an app like the fuzzed one."""
    runs: list[str] = []
    app = CronApp(secret=SECRET, enabled=False, lock_dir=str(tmp_path),
                  store=str(tmp_path / 'runs'), occurrence_tokens=True,
                  clock=lambda: NOW)
    app.cronjob(minute=30, name='job')(lambda request: runs.append('ran'))
    for kind, token in VALID:
        response = Request.blank(f'{PREFIX}/{kind}{token}').get_response(app)
        assert response.status_int == 200
    assert runs == ['ran'] * len(VALID)


# --- schedules: next_after against an independent matcher --------------------

FIELDS = {'minute': (0, 59), 'hour': (0, 23), 'day': (1, 31),
          'month': (1, 12), 'weekday': (0, 7)}


class Field(NamedTuple):
    """One cron field: its text, and the values it means, worked out here
    without onecron's parser."""

    text: str
    values: frozenset[int]


@st.composite
def fields(draw: st.DrawFn, name: str) -> Field:
    """A field of ``name``: ``*``, or a list of numbers, ranges and steps."""
    low, high = FIELDS[name]
    if draw(st.integers(0, 4)) == 0:
        return Field('*', frozenset(range(low, high + 1)))
    texts, values = [], set()
    for _ in range(draw(st.integers(1, 3))):
        a = draw(st.integers(low, high))
        b = draw(st.integers(a, high))
        step = draw(st.integers(1, max(1, high - low)))
        kind = draw(st.sampled_from(['n', 'range', 'step', 'rstep']))
        text, numbers = {
            'n': (str(a), range(a, a + 1)),
            'range': (f'{a}-{b}', range(a, b + 1)),
            'step': (f'*/{step}', range(low, high + 1, step)),
            'rstep': (f'{a}-{b}/{step}', range(a, b + 1, step)),
        }[kind]
        texts.append(text)
        values.update(numbers)
    if name == 'weekday':  # 7 is Sunday too
        values = {value % 7 for value in values}
    return Field(','.join(texts), frozenset(values))


class Expression(NamedTuple):
    minute: Field
    hour: Field
    day: Field
    month: Field
    weekday: Field

    @property
    def text(self) -> str:
        return ' '.join(field.text for field in self)

    @property
    def wall_clock(self) -> bool:
        """Minute and hour both fixed: follows the wall clock across DST."""
        return not (self.minute.text.startswith('*')
                    or self.hour.text.startswith('*'))

    def matches(self, wall: datetime) -> bool:
        """Whether the naive wall time ``wall`` is one of the expression's
        minutes (Vixie cron: a day matching either day field runs when
        both are restricted)."""
        if (wall.second or wall.microsecond
                or wall.minute not in self.minute.values
                or wall.hour not in self.hour.values
                or wall.month not in self.month.values):
            return False
        by_day = wall.day in self.day.values
        by_weekday = wall.isoweekday() % 7 in self.weekday.values
        if not (self.day.text.startswith('*')
                or self.weekday.text.startswith('*')):
            return by_day or by_weekday
        return by_day and by_weekday

    def in_gap(self, day: date, zone: ZoneInfo) -> bool:
        """Whether one of its times on ``day`` is skipped by ``zone``."""
        for hour in self.hour.values:
            for minute in self.minute.values:
                wall = datetime(day.year, day.month, day.day, hour, minute)
                there = wall.replace(tzinfo=zone).astimezone(UTC)
                if (there.astimezone(zone).replace(tzinfo=None) != wall
                        and self.matches(wall)):
                    return True
        return False


EXPRESSIONS = st.builds(Expression, *(fields(name) for name in FIELDS))
# around the spring gap and the autumn repeat of Europe/Zurich
STARTS = st.one_of(
    st.datetimes(min_value=datetime(1990, 1, 1),
                 max_value=datetime(2060, 1, 1), timezones=st.just(UTC)),
    st.sampled_from([datetime(2024, 3, 30, 23, tzinfo=UTC),
                     datetime(2024, 3, 31, 0, 30, tzinfo=UTC),
                     datetime(2024, 10, 26, 23, tzinfo=UTC),
                     datetime(2024, 10, 27, 0, 30, tzinfo=UTC)]))


def _possible(expression: Expression) -> bool:
    """Whether some day of some year matches (the schedule can fire)."""
    for month in expression.month.values:
        length = 29 if month == 2 else calendar.monthrange(2001, month)[1]
        if any(day <= length for day in expression.day.values):
            return True
    return not (expression.day.text.startswith('*')
                or expression.weekday.text.startswith('*'))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much])
@given(EXPRESSIONS, st.sampled_from(['UTC', 'Europe/Zurich']), STARTS)
def test_next_after_increases_and_matches(expression: Expression, zone: str,
                                          start: datetime) -> None:
    """Twenty successive next_after results strictly increase, and each is
    a minute of the expression on the zone's wall clock, or (wall-clock
    schedules) the end of a DST gap that swallowed one; a wall-clock
    schedule never runs one wall time twice."""
    assume(_possible(expression))
    schedule = Schedule(expression.text, timezone=zone)
    tz = ZoneInfo(zone)
    previous = start
    seen: set[datetime] = set()
    for _ in range(20):
        when = schedule.next_after(previous)
        assert when.timestamp() > previous.timestamp()
        wall = when.astimezone(tz).replace(tzinfo=None, fold=0)
        before = datetime.fromtimestamp(when.timestamp() - 1, tz)
        after_gap = before.utcoffset() != when.utcoffset()
        assert expression.matches(wall) or (
            expression.wall_clock and after_gap
            and expression.in_gap(wall.date(), tz)), (expression.text, when)
        if expression.wall_clock:
            assert wall not in seen
            seen.add(wall)
        previous = when
