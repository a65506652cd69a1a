"""Schedules for other schedulers: cron fields, OnCalendar=, the renderers."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import croniter
import pytest
import yaml

from onecron import Schedule
from onecron.calendar import matching_days
from onecron.cron import CronExpression, parse_cron
from onecron.errors import UntranslatableSchedule
from onecron.export import (JobCall, cron_expression, crontab,
                            crontab_command, dns_label, kubernetes,
                            on_calendar, systemd, systemd_word,
                            unique_names, yaml_string)

UTC = timezone.utc
BASE = datetime(2024, 1, 10, 5, 17, 3, tzinfo=UTC)

# (expression or interval, zone, cron fields, OnCalendar= values)
TRANSLATABLE = [
    ('30 8 * * *', 'Europe/Zurich', '30 8 * * *',
     ['*-*-* 08:30:00 Europe/Zurich']),
    ('*/15 * * * MON-FRI', 'UTC', '*/15 * * * 1-5',
     ['Mon..Fri *-*-* *:00/15:00 UTC']),
    ('@daily', 'America/New_York', '0 0 * * *',
     ['*-*-* 00:00:00 America/New_York']),
    ('0 30 8 * * *', 'UTC', '30 8 * * *', ['*-*-* 08:30:00 UTC']),
    ('5/15 */5 * JAN,MAR *', 'UTC', '5-50/15 */5 * 1,3 *',
     ['*-01,03-* 00/5:05/15:00 UTC']),
    ('0 0 * * 7', 'UTC', '0 0 * * 0', ['Sun *-*-* 00:00:00 UTC']),
    ('0 0 * * SAT-SUN', 'UTC', '0 0 * * 0,6',
     ['Sat,Sun *-*-* 00:00:00 UTC']),
    ('0 0 1,15 * MON', 'UTC', '0 0 1,15 * 1',
     ['*-*-01,15 00:00:00 UTC', 'Mon *-*-* 00:00:00 UTC']),
    ('0 0 1-31 * MON', 'UTC', '0 0 * * *', ['*-*-* 00:00:00 UTC']),
    ('0 0 1-31/2 * 1-5', 'UTC', '0 0 1-31/2 * 1-5',
     ['*-*-01/2 00:00:00 UTC', 'Mon..Fri *-*-* 00:00:00 UTC']),
    ('0 12 1-7 * *', 'Asia/Tokyo', '0 12 1-7 * *',
     ['*-*-01..07 12:00:00 Asia/Tokyo']),
    ('0 6,18 * * *', 'UTC', '0 6,18 * * *', ['*-*-* 06,18:00:00 UTC']),
    ('0 9-17 * * *', 'UTC', '0 9-17 * * *', ['*-*-* 09..17:00:00 UTC']),
    (timedelta(minutes=15), 'Europe/Zurich', '*/15 * * * *',
     ['*-*-* *:00/15:00 UTC']),
    (timedelta(hours=2), 'UTC', '0 */2 * * *', ['*-*-* 00/2:00:00 UTC']),
    (timedelta(days=1), 'Asia/Kolkata', '0 0 * * *',
     ['*-*-* 00:00:00 UTC']),
    (timedelta(minutes=1), 'UTC', '* * * * *', ['*-*-* *:*:00 UTC']),
]

# schedules only systemd can say: (schedule, zone, OnCalendar= values)
SYSTEMD_ONLY = [
    ('*/5 * * * * *', 'UTC', ['*-*-* *:*:00/5 UTC']),
    ('30 0 8 * * *', 'UTC', ['*-*-* 08:00:30 UTC']),
    ('0 9 L * *', 'Europe/Zurich', ['*-*~01 09:00:00 Europe/Zurich']),
    ('0 9 * * 1#2', 'UTC', ['Mon *-*-08..14 09:00:00 UTC']),
    ('0 9 * * 5L', 'UTC', ['Fri *-*~07/1 09:00:00 UTC']),
    ('0 12 L,15 * MON', 'UTC',
     ['*-*-15 12:00:00 UTC', '*-*~01 12:00:00 UTC',
      'Mon *-*-* 12:00:00 UTC']),
    ('0 0 */2 * 1#2', 'UTC', ['Mon *-*-09,11,13 00:00:00 UTC']),
    (timedelta(seconds=5), 'UTC', ['*-*-* *:*:00/5 UTC']),
    (timedelta(minutes=90), 'UTC',
     ['*-*-* 00/3:00:00 UTC', '*-*-* 01/3:30:00 UTC']),
]

# (schedule, dialect, fragment of the reason)
UNTRANSLATABLE = [
    ('*/5 * * * * *', 'cron', 'seconds field'),
    ('30 0 8 * * *', 'kubernetes', 'seconds field'),
    ('0 9 L * *', 'kubernetes', "day 'L'"),
    ('0 9 15W * *', 'cron', "day '15W'"),
    ('0 9 * * 1#2', 'kubernetes', "weekday '1#2'"),
    ('0 9 * * 5L', 'cron', "weekday '5L'"),
    ('0 0 */2 * MON', 'kubernetes', 'either'),
    (timedelta(seconds=30), 'cron', 'seconds other than :00'),
    (timedelta(minutes=7), 'cron', 'does not divide a day'),
    (timedelta(minutes=90), 'kubernetes', 'different minutes'),
    (timedelta(days=2), 'kubernetes', 'does not divide a day'),
]


def schedule_of(spec: str | timedelta, zone: str) -> Schedule:
    if isinstance(spec, timedelta):
        return Schedule(every=spec, timezone=zone)
    return Schedule(spec, timezone=zone)


def ident(value: object) -> str:
    return f'every {value}' if isinstance(value, timedelta) else str(value)


def fires(schedule: Schedule, count: int,
          start: datetime = BASE) -> list[datetime]:
    moments, moment = [], start
    for _ in range(count):
        moment = schedule.next_after(moment)
        moments.append(moment.astimezone(UTC))
    return moments


def same_days(one: CronExpression, other: CronExpression) -> bool:
    """Whether two expressions match the same days in every month shape."""
    return all(matching_days(one, length, first) ==
               matching_days(other, length, first)
               for length in (28, 29, 30, 31) for first in range(7))


@pytest.mark.parametrize('spec, zone, fields, events', TRANSLATABLE,
                         ids=[ident(row[0]) for row in TRANSLATABLE])
def test_cron_fields(spec: str | timedelta, zone: str, fields: str,
                     events: list[str]) -> None:
    """Each translatable schedule becomes these cron fields, in its zone
    (intervals in UTC), the same for cron and Kubernetes."""
    schedule = schedule_of(spec, zone)
    expected_zone = 'UTC' if isinstance(spec, timedelta) else zone
    assert cron_expression(schedule) == (fields, expected_zone)
    assert cron_expression(schedule, dialect='kubernetes') == (
        fields, expected_zone)


@pytest.mark.parametrize('spec, zone, fields, events', TRANSLATABLE,
                         ids=[ident(row[0]) for row in TRANSLATABLE])
def test_cron_fields_fire_when_the_schedule_does(
        spec: str | timedelta, zone: str, fields: str,
        events: list[str]) -> None:
    """The fields fire at the schedule's times, read by onecron's parser
    and by croniter."""
    schedule = schedule_of(spec, zone)
    text, cron_zone = cron_expression(schedule)
    assert croniter.croniter.is_valid(text)
    expected = fires(schedule, 40)
    assert fires(Schedule(text, timezone=cron_zone), 40) == expected
    iterator = croniter.croniter(text, BASE.astimezone(
        Schedule(text, timezone=cron_zone).tz))
    assert [iterator.get_next(datetime).astimezone(UTC)
            for _ in range(40)] == expected


@pytest.mark.parametrize('spec, zone, fields, events', TRANSLATABLE,
                         ids=[ident(row[0]) for row in TRANSLATABLE])
def test_on_calendar_values(spec: str | timedelta, zone: str, fields: str,
                            events: list[str]) -> None:
    """Each translatable schedule becomes these OnCalendar= values."""
    assert on_calendar(schedule_of(spec, zone)) == events


@pytest.mark.parametrize('spec, zone, events', SYSTEMD_ONLY,
                         ids=[ident(row[0]) for row in SYSTEMD_ONLY])
def test_on_calendar_says_what_cron_cannot(spec: str | timedelta, zone: str,
                                           events: list[str]) -> None:
    """Seconds, L, n#k, nL and uneven intervals become OnCalendar= values."""
    assert on_calendar(schedule_of(spec, zone)) == events


@pytest.mark.parametrize('spec, dialect, fragment', UNTRANSLATABLE,
                         ids=[f'{ident(row[0])}-{row[1]}'
                              for row in UNTRANSLATABLE])
def test_untranslatable_schedules_say_why(spec: str | timedelta,
                                          dialect: str,
                                          fragment: str) -> None:
    """What cron cannot express raises UntranslatableSchedule (a
    ValueError) naming the part at fault."""
    with pytest.raises(UntranslatableSchedule, match=re.escape(fragment)):
        cron_expression(schedule_of(spec, 'UTC'),
                        dialect=dialect)  # type: ignore[arg-type]
    assert issubclass(UntranslatableSchedule, ValueError)


@pytest.mark.parametrize('spec', ['0 9 15W * *', '0 9 LW * *',
                                  timedelta(minutes=7)])
def test_on_calendar_refuses_what_systemd_cannot_say(
        spec: str | timedelta) -> None:
    """Nearest weekdays and intervals that drift through the day are not
    OnCalendar= values."""
    with pytest.raises(UntranslatableSchedule):
        on_calendar(schedule_of(spec, 'UTC'))


DAY_FIELDS = ['*', '?', '*/2', '*/3', '1', '1,15', '1-10', '10-31/5', '1-31',
              '31', '5/10']
WEEKDAY_FIELDS = ['*', '?', 'MON', 'MON-FRI', 'SAT-SUN', '*/2', '0-6', '7',
                  '1,3,5', '*/6', '2/2']


@pytest.mark.parametrize('day', DAY_FIELDS)
@pytest.mark.parametrize('weekday', WEEKDAY_FIELDS)
def test_day_fields_keep_their_meaning(day: str, weekday: str) -> None:
    """The day and weekday fields match the same days in cron (Vixie rule:
    a field starting with * is unrestricted) and in Kubernetes (robfig:
    only a plain * is), or the schedule is refused."""
    schedule = Schedule(f'0 0 {day} * {weekday}')
    original = schedule.cron
    assert original is not None
    for dialect in ('cron', 'kubernetes'):
        try:
            text, _ = cron_expression(schedule, dialect=dialect)
        except UntranslatableSchedule:
            assert dialect == 'kubernetes' or weekday in ('*/6', '2/2')
            continue
        parsed = parse_cron(text)
        if dialect == 'kubernetes':
            *_, day_text, _, weekday_text = parsed.fields
            parsed = replace(
                parsed, day_restricted=day_text not in ('*', '?'),
                weekday_restricted=weekday_text not in ('*', '?'))
        assert same_days(parsed, original), (dialect, text)


def systemd_elapses(event: str, count: int) -> list[datetime]:
    """The next ``count`` elapses of ``event`` after BASE, by systemd."""
    result = subprocess.run(
        ['systemd-analyze', 'calendar', f'--iterations={count}',
         f'--base-time={BASE:%Y-%m-%d %H:%M:%S} UTC', event],
        capture_output=True, text=True, env={**os.environ, 'TZ': 'UTC'},
        check=True)
    found = re.findall(r'(?:Next elapse|Iter\. #\d+): \w+ '
                       r'(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC', result.stdout)
    return [datetime.fromisoformat(text).replace(tzinfo=UTC)
            for text in found]


CALENDAR_CASES = ([(row[0], row[1]) for row in TRANSLATABLE]
                  + [(row[0], row[1]) for row in SYSTEMD_ONLY])


@pytest.mark.skipif(shutil.which('systemd-analyze') is None,
                    reason='systemd-analyze is not installed')
@pytest.mark.parametrize('spec, zone', CALENDAR_CASES,
                         ids=[ident(row[0]) for row in CALENDAR_CASES])
def test_systemd_fires_when_the_schedule_does(spec: str | timedelta,
                                              zone: str) -> None:
    """systemd-analyze calendar gives the schedule's own next fire times
    for the OnCalendar= values, merged."""
    schedule = schedule_of(spec, zone)
    count = 30
    merged = sorted({moment for event in on_calendar(schedule)
                     for moment in systemd_elapses(event, count)})
    assert merged[:count] == fires(schedule, count)


def test_unique_names_are_dns_labels_cut_and_told_apart() -> None:
    """Kubernetes names are lower-case DNS labels of at most 52 characters;
    a cut or shared name gets a short digest, the others stay readable."""
    long = 'reports.' + 'very_long_name_' * 6
    names = unique_names(['app.Morning_Report', 'a.b', 'a-b', long],
                         dns_label, max_length=52)
    assert names['app.Morning_Report'] == 'app-morning-report'
    assert names['a.b'] != names['a-b']
    assert names['a.b'].startswith('a-b-') and names['a-b'].startswith('a-b-')
    assert len(names[long]) == 52
    for name in names.values():
        assert re.fullmatch(r'[a-z0-9]([-a-z0-9]*[a-z0-9])?', name)
        assert len(name) <= 52
    assert unique_names(['a.b', 'a-b'], dns_label, max_length=52) == {
        key: names[key] for key in ('a.b', 'a-b')}
    assert dns_label('___') == 'job'


@pytest.mark.parametrize('text', [
    'plain', 'yes', 'no', 'null', '0123', '3600', 'a: b # c', "it's",
    'say "hi"', 'back\\slash', 'line\nbreak', 'tab\there', 'nel\x85',
    'sep\u2028arator', 'bom\ufeff', 'ümlaut €', '- dash', '* * * * *',
    '--max-time', '', '?occurrence=nearest&x=%20',
])
def test_yaml_strings_read_back_exactly(text: str) -> None:
    """Any string written as a YAML scalar is read back unchanged."""
    assert yaml.safe_load(f'key: {yaml_string(text)}\n') == {'key': text}


def test_systemd_words_escape_specifiers_variables_and_spaces() -> None:
    """In ExecStart= a % becomes %%, a $ becomes $$, and a word with spaces
    or quotes is double-quoted with backslash escapes."""
    assert systemd_word('http://h/a%20b?x=1&y=2') == (
        'http://h/a%%20b?x=1&y=2')
    assert systemd_word('http://h/$HOME') == 'http://h/$$HOME'
    assert systemd_word('a b"c\\') == '"a b\\"c\\\\"'


def test_crontab_commands_escape_percent_and_quotes() -> None:
    """A crontab command single-quotes the URL and escapes % as \\%."""
    command = crontab_command("http://h/a%20b/it's", 60)
    assert command == ("curl -fsS -X POST --max-time 60 "
                       "'http://h/a\\%20b/it'\"'\"'s' >/dev/null")


def calls() -> list[JobCall]:
    return [
        JobCall('reports.daily', Schedule('30 8 * * *',
                                          timezone='Europe/Zurich'),
                'https://x.org/cronjobs/t1', 60),
        JobCall('reports.fast', Schedule('*/5 * * * * *'),
                'https://x.org/cronjobs/t2', 60),
        JobCall('reports.by_hand', None, None, 60),
    ]


def test_kubernetes_skips_with_a_comment_naming_the_job() -> None:
    """Manual-only and untranslatable jobs are left out, each named in a
    comment with the reason; the others are CronJob documents."""
    result = kubernetes(calls(), source='mod:app')
    text = result.text()
    assert '# skipped reports.fast: ' in text
    assert '# skipped reports.by_hand: manual only' in text
    assert [skipped.job for skipped in result.skipped] == [
        'reports.fast', 'reports.by_hand']
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    assert [doc['metadata']['annotations']['onecron/job']
            for doc in documents] == ['reports.daily']


def test_systemd_writes_a_service_and_a_timer_per_job() -> None:
    """systemd gives two files per scheduled job; the seconds schedule too."""
    result = systemd(calls(), source='mod:app', randomized_delay=30)
    names = [name for name, _ in result.files]
    assert names == ['onecron-reports.daily.service',
                     'onecron-reports.daily.timer',
                     'onecron-reports.fast.service',
                     'onecron-reports.fast.timer']
    timer = dict(result.files)['onecron-reports.fast.timer']
    assert 'OnCalendar=*-*-* *:*:00/5 UTC\n' in timer
    assert 'RandomizedDelaySec=30\n' in timer
    assert '# file: onecron-reports.daily.timer\n' in result.text()


def test_crontab_groups_jobs_by_zone() -> None:
    """Each zone gets one CRON_TZ= line before its jobs."""
    more = calls() + [JobCall('reports.noon', Schedule('0 12 * * *'),
                              'https://x.org/cronjobs/t3', 60)]
    text = crontab(more, source='mod:app').text()
    zones = re.findall(r'^CRON_TZ=(.*)$', text, re.MULTILINE)
    assert zones == ['Europe/Zurich', 'UTC']
    assert text.index('CRON_TZ=UTC') < text.index('0 12 * * * curl')
