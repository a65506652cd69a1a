"""The status page as HTML: plain strings, every value escaped, no JavaScript.

Each function returns a whole document, made encodable as UTF-8 (a lone
surrogate shows as its escape, see :func:`~onecron.text.encodable`).
A job's times show in the zone of its schedule, with the zone's
abbreviation, and in UTC on hover; the scheduler's in UTC. The tables fit
the page from a phone's width up: names break at their dots, each job's
controls take a line of their own, and on a narrow screen every row is a
block of labelled lines.
``base`` is the page's own URL path
(``/cronjobs``); forms post to ``{base}/control/{action}`` with the CSRF
token in a hidden field. The style sheet is inline, and allowed by its hash
in the page's Content-Security-Policy (:data:`CSS_HASH`).
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone, tzinfo
from functools import lru_cache
from html import escape
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from onecron.stores.base import Run
from onecron.stores.history import MissedRange, missed_range
from onecron.text import encodable
from onecron.web.status.model import ApplicationStatus, JobStatus

__all__ = ['overview', 'history', 'error', 'CSS_HASH']

CSS = '''
:root { --ink: #1d2430; --muted: #5d6878; --line: #d9dee6; --bg: #f5f7fa;
  --ok: #1c7c3a; --bad: #b42318; --warn: #9a6700; --run: #175cd3; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI",
  sans-serif; color: var(--ink); background: var(--bg); }
header { background: var(--ink); color: #fff; padding: .7rem 1.5rem; }
header a { color: #fff; text-decoration: none; font-weight: 600; }
header small { color: #b8c0cc; margin-left: .5rem; }
a { color: var(--run); }
time + small { white-space: nowrap; }
main { padding: 1rem 1.5rem 3rem; max-width: 90rem; }
section { background: #fff; border: 1px solid var(--line);
  border-radius: 8px; padding: 1rem 1.25rem; margin: 0 0 1.5rem; }
h1, h2 { margin: 0 0 .5rem; font-size: 1.25rem; overflow-wrap: anywhere; }
h2 code { font-size: 1.15rem; }
.meta { display: flex; flex-wrap: wrap; gap: .4rem 1.5rem; align-items: center;
  color: var(--muted); margin-bottom: .8rem; overflow-wrap: anywhere; }
.meta strong { color: var(--ink); font-weight: 600; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
table.jobs { table-layout: fixed; }
/* fixed columns: a long name or time wraps, never widens the table */
.jobs th:nth-child(1) { width: 24%; }
.jobs th:nth-child(2) { width: 23%; }
.jobs th:nth-child(3) { width: 18%; }
.jobs th:nth-child(4) { width: 22%; }
.jobs td { overflow-wrap: anywhere; }
th, td { text-align: left; vertical-align: top; padding: .45rem .6rem;
  border-top: 1px solid var(--line); }
th { font-size: .8rem; text-transform: uppercase; letter-spacing: .04em;
  color: var(--muted); border-top: 0; white-space: nowrap; }
td small, .muted { color: var(--muted); }
.name { font-weight: 600; }
tr.actions > td, tr.texts > td { border-top: 0; padding-top: 0; }
code, pre { font: .85rem/1.4 ui-monospace, "SFMono-Regular", Menlo,
  monospace; }
pre { background: var(--bg); border: 1px solid var(--line); padding: .5rem;
  margin: .3rem 0; white-space: pre-wrap; overflow-wrap: anywhere;
  max-height: 24rem; overflow: auto; }
.badge { display: inline-block; padding: .05rem .45rem; border-radius: 999px;
  font-size: .75rem; font-weight: 600; letter-spacing: .03em;
  border: 1px solid currentColor; white-space: nowrap; }
.ok { color: var(--ok); } .bad { color: var(--bad); }
.warn { color: var(--warn); } .run { color: var(--run); }
.off { color: var(--muted); }
form { display: inline; margin: 0; }
div.actions { display: flex; flex-wrap: wrap; align-items: flex-start;
  gap: .35rem .5rem; }
button { font: inherit; font-size: .85rem; padding: .2rem .65rem;
  border: 1px solid var(--line); border-radius: 6px; background: #fff;
  color: var(--ink); cursor: pointer; }
button:hover { border-color: var(--ink); }
button.primary { background: var(--ink); color: #fff;
  border-color: var(--ink); }
button.danger { color: var(--bad); }
details { max-width: 100%; padding-top: .2rem; }
summary { cursor: pointer; color: var(--run); font-size: .85rem; }
details form { display: flex; flex-wrap: wrap; gap: .3rem;
  margin-top: .3rem; }
input { font: .85rem ui-monospace, Menlo, monospace; padding: .2rem .35rem;
  border: 1px solid var(--line); border-radius: 6px; max-width: 100%; }
.notice { background: #eef4ff; border: 1px solid #b2ccff;
  border-radius: 8px; padding: .6rem 1rem; margin-bottom: 1rem;
  overflow-wrap: anywhere; }
.notice.warning { background: #fff4e5; border-color: #ffb84d; }
.pages { margin-top: 1rem; display: flex; gap: 1rem; }
@media (max-width: 60rem) {
  header, main { padding-left: .75rem; padding-right: .75rem; }
  section { padding: .75rem; }
  table.stack, .stack tbody, .stack tr, .stack td { display: block; }
  .stack thead { display: none; }
  .stack tbody { border-top: 1px solid var(--line); padding: .4rem 0; }
  .stack td { border: 0; padding: .1rem 0; overflow-wrap: anywhere; }
  .stack td[data-label] { position: relative; padding-left: 6.5rem; }
  .stack td[data-label]::before { content: attr(data-label);
    position: absolute; left: 0; top: .3rem; color: var(--muted);
    font-size: .75rem; text-transform: uppercase; letter-spacing: .04em; }
  .stack tr.actions > td { padding-top: .3rem; }
}
'''
#: the CSP source that allows exactly :data:`CSS`
CSS_HASH = "'sha256-{}'".format(base64.b64encode(
    hashlib.sha256(CSS.encode('utf-8')).digest()).decode('ascii'))

_OUTCOME_CLASS = {'ok': 'ok', 'failed': 'bad', 'timed out': 'bad',
                  'skipped': 'warn', 'missed': 'warn'}


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _document(title: str, base: str, body: str) -> str:
    # one pass over the whole page makes every value in it encodable
    return encodable(
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{_e(title)}</title>'
        f'<style>{CSS}</style></head>\n<body><header>'
        f'<a href="{_e(base)}/">onecron</a> <small>times in each job\'s '
        f'zone, in UTC on hover</small></header>\n'
        f'<main>{body}</main></body></html>\n')


def _badge(text: str, kind: str) -> str:
    return f'<span class="badge {kind}">{_e(text)}</span>'


def _when(moment: datetime | None, now: datetime,
          zone: tzinfo = timezone.utc) -> str:
    """A time in ``zone`` with how long ago or ahead it is, or a dash."""
    if moment is None:
        return '<span class="muted">–</span>'
    seconds = (moment - now).total_seconds()
    relative = (f'in {_span(seconds)}' if seconds >= 1
                else f'{_span(-seconds)} ago' if seconds <= -1 else 'now')
    return f'{_time(moment, zone)} <small>{relative}</small>'


def _time(moment: datetime, zone: tzinfo = timezone.utc) -> str:
    """``moment`` on the wall clock of ``zone``, with the zone's
    abbreviation (``2024-05-01 08:30:00 CEST``), and in UTC on hover."""
    local = moment.astimezone(zone)
    utc = moment.astimezone(timezone.utc)
    return (f'<time datetime="{_e(moment.isoformat())}" '
            f'title="{utc:%Y-%m-%d %H:%M:%S} UTC">'
            f'{local:%Y-%m-%d %H:%M:%S}&nbsp;{_e(local.tzname() or "")}'
            f'</time>')


@lru_cache(maxsize=64)
def _zone(name: str | None) -> tzinfo:
    """The zone a job's schedule is in; UTC for a manual-only job (or a
    zone name that no longer loads)."""
    if not name or name == 'UTC':
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return timezone.utc


def _span(seconds: float) -> str:
    """A rough length of time: ``45 s``, ``12 min``, ``3 h``, ``2 days``."""
    for size, unit in ((86400, 'days'), (3600, 'h'), (60, 'min')):
        if seconds >= 2 * size:
            return f'{seconds // size:.0f} {unit}'
    return f'{seconds:.0f} s'


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ''
    if seconds < 10:
        return f'{seconds:.2f} s'
    minutes, rest = divmod(round(seconds), 60)
    return f'{minutes} min {rest} s' if minutes else f'{rest} s'


def _outcome(run: Run) -> str:
    if run.outcome is None:
        return _badge('running', 'run')
    return _badge(run.outcome.value, _OUTCOME_CLASS.get(run.outcome.value,
                                                        'off'))


def _form(base: str, action: str, csrf: str, label: str,
          fields: dict[str, str], kind: str = '') -> str:
    hidden = ''.join(f'<input type="hidden" name="{_e(name)}" '
                     f'value="{_e(value)}">'
                     for name, value in {**fields, 'csrf': csrf}.items())
    css = f' class="{kind}"' if kind else ''
    return (f'<form method="post" action="{_e(base)}/control/{action}">'
            f'{hidden}<button type="submit"{css}>{_e(label)}</button>'
            f'</form>')


def history_url(base: str, job: str, application_id: str,
                before_id: int | None = None) -> str:
    """The URL of ``job``'s history page.

    A lone surrogate in a name is kept as bytes that are not UTF-8: the
    link leads to a 404, never to another job's page.
    """
    query = {'application_id': application_id}
    if before_id is not None:
        query['before_id'] = str(before_id)
    path = quote(job, safe='', errors='surrogatepass')
    return (f'{base}/jobs/{path}?'
            f'{urlencode(query, errors="surrogatepass")}')


# --- the overview -----------------------------------------------------


def overview(applications: list[ApplicationStatus], *, base: str, csrf: str,
             now: datetime, notice: str | None = None) -> str:
    """The page at ``{prefix}/``: one section per application id."""
    body = f'<p class="notice">{_e(notice)}</p>' if notice else ''
    if not applications:
        body += ('<section><p>No application id has been seen yet: the '
                 'first request to the application starts its scheduler.'
                 '</p></section>')
    body += ''.join(_application(status, base, csrf, now)
                    for status in applications)
    return _document('onecron status', base, body)


def _application(status: ApplicationStatus, base: str, csrf: str,
                 now: datetime) -> str:
    app_field = {'application_id': status.id}
    scheduler = status.scheduler
    if scheduler is None:
        seen = '<strong>no scheduler seen</strong>'
    else:
        seen = (f'scheduler <strong>{_e(scheduler.host)}</strong> pid '
                f'<strong>{scheduler.pid}</strong>, alive since '
                f'{_when(scheduler.alive_since, now)}, last heartbeat '
                f'{_when(scheduler.heartbeat, now)}')
    if not status.stored:
        hold = '<span class="muted">no run store: no history or switches'
        hold += '</span>'
    elif status.held:
        since = status.hold.since if status.hold is not None else None
        hold = (f'<span>{_badge("HELD", "bad")} since {_when(since, now)}'
                '</span> '
                + _form(base, 'release', csrf, 'Release and run what was '
                        'missed', {**app_field, 'catch_up': '1'}, 'primary')
                + ' ' + _form(base, 'release', csrf, 'Release and just '
                              'reschedule', {**app_field, 'catch_up': '0'}))
    else:
        hold = (f'{_badge("ACTIVE", "ok")} '
                + _form(base, 'hold', csrf, 'Hold all jobs', app_field,
                        'danger'))
    rows = ''.join(_job_row(job, status, base, csrf, now)
                   for job in status.jobs)
    return (f'<section id="app-{_e(status.id)}">'
            f'<h2>Application <code>{_e(status.id)}</code></h2>'
            f'<div class="meta"><span>{seen}</span>'
            f'<span>pool: <strong>{status.queued}</strong> waiting, '
            f'<strong>{status.calls_running}</strong> running</span></div>'
            f'<div class="meta">{hold}</div>'
            + ''.join(f'<p class="notice warning">{_e(warning)}</p>'
                      for warning in status.warnings)
            + f'<div class="scroll"><table class="jobs stack"><thead><tr>'
            f'<th>Job</th><th>Schedule</th><th>Next run</th>'
            f'<th>Last run</th><th>State</th></tr></thead>{rows}</table>'
            f'</div></section>\n')


def _job_row(job: JobStatus, status: ApplicationStatus, base: str,
             csrf: str, now: datetime) -> str:
    """A job's row, and under it a row with its controls: however long its
    name, they stay on the page."""
    fields = {'application_id': status.id, 'job': job.name}
    link = history_url(base, job.name, status.id)
    zone = _zone(job.timezone)
    if job.schedule is None:
        schedule = '<span class="muted">manual only</span>'
    else:
        schedule = (f'{_e(job.description)}<br><code>{_e(job.schedule)}'
                    f'</code>')
        if job.overridden:
            schedule += ' ' + _badge('overridden', 'warn')
    if job.next_run is not None:
        next_run = _when(job.next_run, now, zone)
    elif not job.enabled:
        next_run = '<span class="muted">disabled</span>'
    elif status.held and job.schedule is not None:
        next_run = '<span class="muted">held</span>'
    else:
        next_run = _when(None, now)
    last = '<span class="muted">never</span>'
    missed = None if job.last_run is None else missed_range(job.last_run)
    if missed is not None:
        last = f'{_badge("missed", "warn")} {_missed(missed, zone)}'
    elif job.last_run is not None:
        last = (f'{_outcome(job.last_run)} '
                f'{_when(job.last_run.started, now, zone)}'
                f'<br><small>{_duration(job.last_run.duration)}</small>')
    # metrics: the figures /metrics has too
    if job.lateness is not None:
        last += f'<br><small>late {_duration(job.lateness)}</small>'
    if job.last_success is not None:
        last += (f'<br><small>last ok {_when(job.last_success, now, zone)}'
                 '</small>')
    state = _badge(job.state, 'run' if job.running else 'off')
    state += ' ' + (_badge('enabled', 'ok') if job.enabled
                    else _badge('disabled', 'bad'))
    toggle = (_form(base, 'disable', csrf, 'Disable', fields) if job.enabled
              else _form(base, 'enable', csrf, 'Enable', fields))
    reset = (_form(base, 'reset', csrf, 'Reset schedule', fields)
             if job.overridden else '')
    return (f'<tbody data-job="{_e(job.name)}"><tr>'
            f'<td class="name"><a href="{_e(link)}">{_breakable(job.name)}'
            f'</a></td><td data-label="Schedule">{schedule}</td>'
            f'<td class="next" data-label="Next run">{next_run}</td>'
            f'<td data-label="Last run">{last}</td>'
            f'<td data-label="State">{state}</td></tr>'
            f'<tr class="actions"><td colspan="5"><div class="actions">'
            f'{_form(base, "run-now", csrf, "Run now", fields, "primary")}'
            f'{toggle}{reset}{_override_form(job, fields, base, csrf)}'
            f'</div></td></tr></tbody>\n')


def _breakable(name: str) -> str:
    """``name`` escaped, with a line break allowed after each dot: a long
    ``module.qualname`` wraps where it reads best."""
    return _e(name).replace('.', '.<wbr>')


def _override_form(job: JobStatus, fields: dict[str, str], base: str,
                   csrf: str) -> str:
    hidden = ''.join(f'<input type="hidden" name="{_e(name)}" '
                     f'value="{_e(value)}">'
                     for name, value in {**fields, 'csrf': csrf}.items())
    return (f'<details><summary>Change schedule</summary>'
            f'<form method="post" action="{_e(base)}/control/override">'
            f'{hidden}<input name="schedule" required size="16" '
            f'aria-label="new schedule of {_e(job.name)}" '
            f'placeholder="*/5 * * * *" value="{_e(job.schedule or "")}">'
            f'<input name="timezone" size="12" aria-label="time zone" '
            f'placeholder="{_e(job.timezone or "UTC")}">'
            f'<button type="submit">Override</button></form></details>')


# --- a job's history ---------------------------------------------------


def history(job: str, application_id: str, runs: list[Run] | None, *,
            base: str, csrf: str, now: datetime,
            older: int | None = None, newest: bool = True,
            notice: str | None = None, zone: str | None = None) -> str:
    """A job's last runs; ``runs`` is None without a store.

    ``older`` is the ``before_id`` of the next page, if there is one;
    ``newest`` tells whether this is the first page; ``zone`` names the
    zone of the job's schedule, which its times are shown in.
    """
    fields = {'application_id': application_id, 'job': job,
              'back': 'history'}
    body = f'<p class="notice">{_e(notice)}</p>' if notice else ''
    body += (f'<section><h1>Job <code>{_e(job)}</code> '
            f'<small class="muted">of {_e(application_id)}</small></h1>'
            f'<div class="meta"><a href="{_e(base)}/#app-'
            f'{_e(application_id)}">← all jobs</a>'
            f'{_form(base, "run-now", csrf, "Run now", fields, "primary")}'
            f'</div>')
    if runs is None:
        body += '<p>No run store is configured: runs are not recorded.</p>'
    elif not runs:
        body += '<p>No runs recorded.</p>'
    else:
        tz = _zone(zone)
        rows = ''.join(_run_row(run, now, tz) for run in runs)
        body += ('<div class="scroll"><table class="stack"><thead><tr>'
                 '<th>#</th><th>Started</th><th>Trigger</th>'
                 '<th>Scheduled</th><th>Duration</th><th>Outcome</th>'
                 f'<th>HTTP</th></tr></thead>{rows}</table></div>')
    pages = []
    if not newest:
        pages.append(f'<a href="{_e(history_url(base, job, application_id))}'
                     f'">newest runs</a>')
    if older is not None:
        url = history_url(base, job, application_id, older)
        pages.append(f'<a href="{_e(url)}">older runs →</a>')
    if pages:
        body += f'<div class="pages">{"".join(pages)}</div>'
    body += '</section>'
    return _document(f'{job} – onecron', base, body)


def _missed(missed: MissedRange, zone: tzinfo) -> str:
    """What a ``missed`` record stands for: ``missed 540 occurrences, from
    … to …`` (nothing ran: no start time, no duration)."""
    if missed.count == 1:
        return f'missed 1 occurrence, at {_time(missed.first, zone)}'
    return (f'missed {missed.count} occurrences, from '
            f'{_time(missed.first, zone)} to {_time(missed.last, zone)}')


def _run_row(run: Run, now: datetime, zone: tzinfo) -> str:
    scheduled = ('<span class="muted">–</span>' if run.scheduled is None
                 else _time(run.scheduled, zone))
    started = _when(run.started, now, zone)
    duration = _duration(run.duration)
    missed = missed_range(run)
    if missed is not None:
        started, duration = _when(None, now), ''
        scheduled = _missed(missed, zone)
    status = '' if run.http_status is None else str(run.http_status)
    row = (f'<tbody><tr id="run-{run.id}"><td data-label="Run">{run.id}'
           f'</td><td data-label="Started">{started}'
           f'</td><td data-label="Trigger">{_e(run.trigger.value)}</td>'
           f'<td data-label="Scheduled">{scheduled}</td>'
           f'<td data-label="Duration">{duration}</td>'
           f'<td data-label="Outcome">{_outcome(run)}</td>'
           f'<td data-label="HTTP">{status}</td></tr>\n')
    output = _without_traceback(run.output, run.error)
    texts = ''
    if output:
        texts += f'<div>Output</div><pre>{_e(output)}</pre>'
    if run.error:
        texts += f'<div class="bad">Error</div><pre>{_e(run.error)}</pre>'
    if texts:
        row += (f'<tr class="texts"><td></td><td colspan="6">{texts}</td>'
                f'</tr>')
    return row + '</tbody>'


def _without_traceback(output: str, error: str | None) -> str:
    """The output of a run, less the traceback of its error.

    A job that raises leaves the traceback in its error, and in its output
    too: the failure is logged with it while the run's log is kept. The
    page shows it once, as the error.
    """
    trace = (error or '').strip()
    if not trace or trace not in output:
        return output
    return output.replace(trace, '').rstrip()


# --- errors -------------------------------------------------------------


def error(title: str, message: str, *, base: str) -> str:
    """A page explaining why a request failed, with a way back."""
    return _document(f'{title} – onecron', base,
                     f'<section><h1>{_e(title)}</h1><p>{_e(message)}</p>'
                     f'<p><a href="{_e(base)}/">← back to the status page'
                     f'</a></p></section>')
