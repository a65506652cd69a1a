"""Schedules for other schedulers: cron fields, OnCalendar=, the renderers."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import croniter
import pytest
import yaml

from onecron import Schedule
from onecron.cli.export import (
    Export,
    JobCall,
    cron_expression,
    crontab,
    crontab_command,
    curl_config,
    dns_label,
    kubernetes,
    on_calendar,
    systemd,
    systemd_word,
    unique_names,
    yaml_string,
)
from onecron.errors import UntranslatableSchedule
from onecron.schedule.cron import CronExpression, parse_cron
from onecron.schedule.days import matching_days

from .conftest import LiveServer

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


DAILY = 'https://x.org/cronjobs/S3CRET-daily.sig'
FAST = 'https://x.org/cronjobs/S3CRET-fast.sig'
NOON = 'https://x.org/cronjobs/S3CRET-noon.sig?occurrence=nearest'


def calls() -> list[JobCall]:
    return [
        JobCall('reports.daily', Schedule('30 8 * * *',
                                          timezone='Europe/Zurich'),
                DAILY, 60),
        JobCall('reports.fast', Schedule('*/5 * * * * *'), FAST, 60),
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
    documents = [doc for doc in yaml.safe_load_all(text)
                 if doc and doc['kind'] == 'CronJob']
    assert [doc['metadata']['annotations']['onecron/job']
            for doc in documents] == ['reports.daily']


def test_systemd_writes_a_service_and_a_timer_per_job() -> None:
    """systemd gives two files per scheduled job; the seconds schedule too."""
    result = systemd(calls(), source='mod:app', config_dir='/etc/onecron',
                     randomized_delay=30)
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
                              NOON, 60)]
    text = crontab(more, source='mod:app', config_dir='/etc/onecron').text()
    zones = re.findall(r'^CRON_TZ=(.*)$', text, re.MULTILINE)
    assert zones == ['Europe/Zurich', 'UTC']
    assert text.index('CRON_TZ=UTC') < text.index('0 12 * * * curl')


# -- where the URLs are -------------------------------------------------------

def secret_parts(url: str) -> list[str]:
    """What of ``url`` must not show: its token, and the whole URL."""
    return [url, url.rsplit('/', 1)[1].split('?')[0]]


def test_crontab_lines_read_the_urls_from_config_files() -> None:
    """A crontab line holds no URL: curl reads it with -K from the job's
    config file in config_dir, which Export.configs gives."""
    more = calls() + [JobCall('reports.noon', Schedule('0 12 * * *'),
                              NOON, 60)]
    result = crontab(more, source='mod:app', config_dir='/etc/on%cron')
    text = result.text()
    for url in (DAILY, NOON):
        for part in secret_parts(url):
            assert part not in text
    lines = [line for line in text.splitlines()
             if line and not line.startswith(('#', 'CRON_TZ='))]
    assert lines == [
        "30 8 * * * curl -fsS -X POST --max-time 60 -K "
        "'/etc/on\\%cron/onecron-reports.daily.curlrc' >/dev/null",
        "0 12 * * * curl -fsS -X POST --max-time 60 -K "
        "'/etc/on\\%cron/onecron-reports.noon.curlrc' >/dev/null"]
    configs = dict(result.configs)
    assert sorted(configs) == ['onecron-reports.daily.curlrc',
                               'onecron-reports.noon.curlrc']
    assert f'\nurl = "{NOON}"\n' in configs['onecron-reports.noon.curlrc']


def test_systemd_services_read_the_urls_from_config_files() -> None:
    """ExecStart= holds no URL: curl reads it with -K from the job's config
    file in config_dir, which Export.configs gives."""
    result = systemd(calls(), source='mod:app', config_dir='/etc/onecron')
    for _, text in result.files:
        for part in secret_parts(DAILY):
            assert part not in text
    service = dict(result.files)['onecron-reports.daily.service']
    (exec_start,) = re.findall('^ExecStart=(.*)$', service, re.MULTILINE)
    assert exec_start == (
        '/usr/bin/curl -fsS -X POST --max-time 60 '
        '-K /etc/onecron/onecron-reports.daily.curlrc')
    configs = dict(result.configs)
    assert sorted(configs) == ['onecron-reports.daily.curlrc',
                               'onecron-reports.fast.curlrc']
    assert f'\nurl = "{DAILY}"\n' in configs['onecron-reports.daily.curlrc']


def test_kubernetes_keeps_the_urls_in_a_secret() -> None:
    """One Secret holds the URLs, a key per CronJob; each CronJob takes its
    URL from it into $ONECRON_URL, and neither the CronJob nor its
    container's command holds it."""
    more = calls() + [JobCall('reports.noon', Schedule('0 12 * * *'),
                              NOON, 60)]
    documents = [doc for doc in yaml.safe_load_all(
        kubernetes(more, source='mod:app').text()) if doc]
    assert [doc['kind'] for doc in documents] == ['Secret', 'CronJob',
                                                  'CronJob']
    secret, *cronjobs = documents
    assert secret['apiVersion'] == 'v1' and secret['type'] == 'Opaque'
    assert secret['metadata']['name'] == 'onecron-mod-app'
    assert secret['stringData'] == {'reports-daily': DAILY,
                                    'reports-noon': NOON}
    for cronjob in cronjobs:
        for part in secret_parts(DAILY) + secret_parts(NOON):
            assert part not in yaml.safe_dump(cronjob)
        pod = cronjob['spec']['jobTemplate']['spec']['template']['spec']
        (container,) = pod['containers']
        assert container['command'][:2] == ['sh', '-c']
        assert '--config -' in container['command'][2]
        assert container['env'] == [{
            'name': 'ONECRON_URL', 'valueFrom': {'secretKeyRef': {
                'name': 'onecron-mod-app',
                'key': cronjob['metadata']['name']}}}]


def test_no_secret_without_a_scheduled_job() -> None:
    """An export with nothing to schedule has no Secret either."""
    text = kubernetes(calls()[1:], source='mod:app').text()
    assert [doc for doc in yaml.safe_load_all(text) if doc] == []


@pytest.mark.parametrize('url', [
    'https://x.org/a"b/S3CRET', 'https://x.org/a\\b/S3CRET',
    'https://x.org/a b/S3CRET', 'https://x.org/a\nb/S3CRET'])
def test_an_impossible_url_is_refused_without_showing_it(url: str) -> None:
    """A URL with a quote, backslash, space or control character (from a
    bad base URL) is refused by every target, naming the job, not the
    URL."""
    jobs = [JobCall('reports.noon', Schedule('0 12 * * *'), url, 60)]
    renders: list[Callable[[], Export]] = [
        lambda: crontab(jobs, source='m:a', config_dir='/c'),
        lambda: systemd(jobs, source='m:a', config_dir='/c'),
        lambda: kubernetes(jobs, source='m:a')]
    for render in renders:
        with pytest.raises(ValueError) as info:
            render()
        assert "job 'reports.noon'" in str(info.value)
        assert 'S3CRET' not in str(info.value)


@pytest.mark.parametrize('config_dir', ['etc/onecron', '', '/etc/a\nb'])
def test_the_config_dir_must_be_an_absolute_path(config_dir: str) -> None:
    """cron and systemd run curl in another directory: config_dir must be
    absolute, and on one line."""
    for render in (crontab, systemd):
        with pytest.raises(ValueError, match='config_dir'):
            render(calls(), source='m:a', config_dir=config_dir)


def test_curl_config_escapes_quotes_and_backslashes() -> None:
    """curl_config double-quotes the URL with curl's own escapes."""
    assert curl_config('http://h/a"b\\c') == (
        '# The signed URL: whoever can read this file can run the job.\n'
        'url = "http://h/a\\"b\\\\c"\n')
    assert curl_config('http://h/', job='a\nb').startswith(
        '# The signed URL of onecron job a?b: ')


# -- the commands, run for real -----------------------------------------------

# every character a URL may hold, for the shells and curl to pass on
ODD_PATH = "/cronjobs/S3CRET-x_y.z~!$&'()*+,;=:@%41-%25/sig"


def echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """A WSGI app answering with the request's method and URI."""
    start_response('200 OK', [('Content-Type', 'text/plain')])
    return [f"{environ['REQUEST_METHOD']} "
            f"{environ['REQUEST_URI']}".encode()]


@pytest.fixture
def recording_curl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose curl is a script that records its arguments
    (one per line) and runs the real curl; the record's path."""
    real = shutil.which('curl')
    assert real is not None, 'curl is needed'
    record = tmp_path / 'argv'
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    (bin_dir / 'curl').write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$0" "$@" >> {shlex.quote(str(record))}'
        f'\nexec {shlex.quote(real)} "$@"\n')
    (bin_dir / 'curl').chmod(0o700)
    env = {'PATH': f'{bin_dir}:{os.environ["PATH"]}', 'HOME': str(tmp_path)}
    return env, record


def write_configs(directory: Path, configs: tuple[tuple[str, str], ...]
                  ) -> None:
    for name, text in configs:
        (directory / name).write_text(text)


def test_each_target_hands_curl_the_exact_url(
        tmp_path: Path, live_server: Callable[..., LiveServer],
        recording_curl: tuple[dict[str, str], Path]) -> None:
    """The crontab line through sh, the ExecStart= command and the
    container's shell each POST to the URL as given, odd characters and
    all, and no process gets it among its arguments."""
    server = live_server(echo)
    url = server.url + ODD_PATH + '?occurrence=nearest'
    env, record = recording_curl
    jobs = [JobCall('job', Schedule('0 12 * * *'), url, 10)]
    config_dir = tmp_path / 'conf'
    config_dir.mkdir()
    cron = crontab(jobs, source='m:a', config_dir=str(config_dir))
    write_configs(config_dir, cron.configs)
    (line,) = [line for line in cron.text().splitlines()
               if line.startswith('0 12')]
    command = line.split(' ', 5)[5].replace('\\%', '%')
    command = command.replace('>/dev/null', f'>{tmp_path}/out')
    commands = [['sh', '-c', command]]
    units = systemd(jobs, source='m:a', config_dir=str(config_dir))
    (exec_start,) = re.findall('^ExecStart=/usr/bin/(.*)$',
                               dict(units.files)['onecron-job.service'],
                               re.MULTILINE)
    commands.append(shlex.split(exec_start.replace('%%', '%')))
    (cronjob,) = [doc for doc in yaml.safe_load_all(
        kubernetes(jobs, source='m:a').text()) if doc['kind'] == 'CronJob']
    (container,) = cronjob['spec']['jobTemplate']['spec']['template'][
        'spec']['containers']
    commands.append(container['command'])
    answers = []
    for argv in commands:
        result = subprocess.run(argv, env={**env, 'ONECRON_URL': url},
                                capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
        answers.append(result.stdout)
        for word in argv:
            assert 'S3CRET' not in word
    answers[0] = (tmp_path / 'out').read_text()
    expected = f'POST {ODD_PATH}?occurrence=nearest'
    assert answers == [expected] * 3
    recorded = record.read_text()
    assert recorded.count('/bin/curl\n') == 3
    assert 'S3CRET' not in recorded
