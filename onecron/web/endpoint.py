"""The job endpoint: ``{prefix}/{token}`` runs a job inside the request.

A valid token, GET or POST: the job runs with the :class:`webob.Request`
and the answer is 200 (409 when it is still running on this host and its
``overlap`` is ``'skip'``). With ``?occurrence=nearest`` the call stands
for the job's occurrence nearest to now: it claims that occurrence in the
store first, and a second call for it gets 409 and runs nothing (another
replica of an external scheduler, a retried ``curl``). Other methods get
405 and nothing runs (a link previewer's HEAD must not run a job); a token
that is bad, truncated, forged, signed with a foreign secret, or names no
registered job gets a plain 404 that does not say which. A job that raises
gets a generic 500; the traceback goes to the log and Sentry, never to the
response.

``{prefix}/o/{token}`` takes an occurrence token, made by the scheduler
for one occurrence of one job of one application id: outside its window
it gets 403, for another application id 404, and once the occurrence is
claimed by another run 409; otherwise it runs as a scheduled run of that
occurrence. ``static_urls=False`` refuses the static tokens (404), and
``job_access`` refuses clients before any token is looked at (403).

``{prefix}/t/{token}`` takes a trigger token, made by onecron for one run
outside the schedule when static URLs are off (run now, ``run_soon``,
chains): it runs only for its own application id (else 404), only within
``occurrence_window`` of when the call was due and only for a call that
sends the run's key as ``X-Onecron-Run`` (else 403).
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING

from webob import Request, Response
from webob.exc import HTTPMethodNotAllowed

from onecron.job import Job, claim
from onecron.operations import OCCURRENCE_PATH as OCCURRENCE_PATH
from onecron.operations import TRIGGER_PATH as TRIGGER_PATH
from onecron.protocol.headers import REPORTED_HEADER, RUN_HEADER
from onecron.protocol.headers import trigger_of as _trigger_of
from onecron.protocol.signing import (
    JobSigner,
    OccurrenceToken,
    StaticToken,
    TriggerToken,
)
from onecron.reporting import (
    REDACTED,
    CallbackFailures,
    Reporter,
    redacting,
    watch_prefix,
)
from onecron.running.checkins import CheckIns  # sentry crons
from onecron.running.lock import JobLocks
from onecron.running.mail import Notify
from onecron.running.misfire import nearest
from onecron.running.output import captured
from onecron.schedule.clock import Clock, utcnow
from onecron.schedule.rules import Schedule
from onecron.stores.base import Outcome, RunKeyTaken, Trigger
from onecron.stores.history import History
from onecron.text import encodable
from onecron.web.access import JobAccess

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

#: the methods that run a job
RUN_METHODS = ('GET', 'POST')

#: triggers a job's ``then`` jobs after a successful run
Chain = Callable[[Job, Request, str], None]
#: the schedule in force for a job and application id
ScheduleOf = Callable[[Job, str], Schedule | None]


def _plain(status: int, text: str) -> Response:
    # no-store: a job's answer is one run's, for no cache to keep or share
    return Response(text + '\n', status=status,
                    content_type='text/plain', charset='utf-8',
                    cache_control='no-store')


def _token_of(request: Request) -> str:
    """The token a job URL's path ends with."""
    return request.path_info.rsplit('/', 1)[-1]


class JobEndpoint:
    """Serves the requests under ``prefix``."""

    def __init__(self, jobs: Mapping[str, Job], signer: JobSigner, *,
                 prefix: str,
                 application_id_of: Callable[[Request], str | None],
                 reporter: Reporter, history: History, slow_after: float,
                 lock_dir: str | None = None,
                 chain: Chain | None = None,
                 notify: Notify | None = None,
                 schedule_of: ScheduleOf = lambda job, app_id: job.schedule,
                 clock: Clock = utcnow,
                 occurrence_window: float = 300.0,
                 static_urls: bool = True,
                 legacy_static_tokens: bool = False,
                 access: JobAccess | None = None,
                 failures: CallbackFailures | None = None,
                 checkins: CheckIns | None = None) -> None:
        self.prefix = prefix
        watch_prefix(prefix)  # its tokens stay out of every Sentry event
        # sentry crons: a check-in as each run starts and ends
        #: the Sentry Crons check-ins of its runs
        self.checkins = checkins or CheckIns(slow_after=slow_after)
        # a failing job_access or application_id callable, reported once
        self._failures = failures or CallbackFailures(reporter)
        self._occurrence_window = occurrence_window
        self._static_urls = static_urls
        # static tokens that name no application id: only where it is fixed
        self._legacy_static_tokens = legacy_static_tokens
        self._access = access or JobAccess()
        if self._access.refuses_direct_local_calls():
            log.warning("job_access='loopback' with a loopback address in "
                        'trusted_proxies: calls from this host must come '
                        'through that proxy, so point base_url at it; the '
                        "scheduler's calls straight to the application "
                        'server name no client and are refused (403)')
        self._schedule_of = schedule_of
        self._clock = clock
        self._notify = notify
        self._history = history
        self._locks = JobLocks(lock_dir)
        self._chain = chain
        self._jobs = jobs
        self._signer = signer
        self._application_id_of = application_id_of
        self._reporter = reporter
        self._slow_after = slow_after

    def handles(self, path: str) -> bool:
        """Whether ``path`` is under the prefix (the prefix itself too)."""
        prefix = self.prefix
        return path.startswith(prefix) and (
            len(path) == len(prefix) or path[len(prefix)] == '/')

    def not_found(self, environ: WSGIEnvironment,
                  start_response: StartResponse) -> Iterable[bytes]:
        """A plain 404 that gives no hint why."""
        return _plain(404, 'Not Found')(environ, start_response)

    def _not_found(self) -> Response:
        return _plain(404, 'Not Found')

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        request = Request(environ)
        token = request.path_info[len(self.prefix) + 1:]
        kind, slash, rest = token.partition('/')
        if slash and kind in (OCCURRENCE_PATH, TRIGGER_PATH):
            token = rest
        else:
            kind = ''
        if not token or '/' in token:
            return self.not_found(environ, start_response)
        refused = self._refused(request)
        if refused is not None:
            return refused(environ, start_response)
        if request.method not in RUN_METHODS:
            response: Response = HTTPMethodNotAllowed(
                headers={'Allow': ', '.join(RUN_METHODS)})
            return response(environ, start_response)
        said: StaticToken | OccurrenceToken | TriggerToken | None
        if kind == OCCURRENCE_PATH:
            said = self._signer.verify_occurrence(token)
        elif kind == TRIGGER_PATH:
            said = self._signer.verify_trigger(token)
        elif self._static_urls:
            said = self._signer.verify_static(token)
        else:
            said = None  # static URLs are off: any token is bad
        job = self._jobs.get(said.name) if said is not None else None
        if job is None:
            return self.not_found(environ, start_response)
        response = self.run(job, request, said)
        return response(environ, start_response)

    def _refused(self, request: Request) -> Response | None:
        """403 if ``job_access`` refuses the client, else None."""
        try:
            allowed = self._access.allows(request)
        except Exception as exc:  # the application's own code
            with redacting(_token_of(request)):
                self._failures.report('job_access', exc, 'the call of a '
                                      'job URL is refused (403)')
            allowed = False
        if allowed:
            return None
        # never the path: it holds the token
        log.info('a %s call of a job URL from %s refused by job_access',
                 request.method, self._access.client_address(request))
        return _plain(403, 'Forbidden')

    def run(self, job: Job, request: Request,
            token: StaticToken | OccurrenceToken | TriggerToken | None = None
            ) -> Response:
        """Run ``job`` inside ``request``, write the run down, answer.

        ``token``: the call came with this occurrence token (valid
        signature, registered job); it must fit the application id and
        the time, and wins the occurrence's claim, or nothing runs. Or
        with this trigger token: it must fit the application id, the time
        and the call's run key.
        """
        try:
            found = self._application_id_of(request)
        except Exception as exc:  # the application's own code
            with redacting(_token_of(request)):
                self._failures.report('application_id', exc, 'the call of '
                                      'a job URL is refused (404)',
                                      job=job.name, application_id='?')
            return self._not_found()
        if found is None:
            return self._not_found()  # the request is no tenant's
        application_id = found
        if isinstance(token, StaticToken) and not (
                token.application_id == application_id
                or (token.application_id is None
                    and self._legacy_static_tokens)):
            # as for a bad token: nothing says the token is good elsewhere
            return self._not_found()
        trigger, scheduled = _trigger_of(request)
        key = request.headers.get(RUN_HEADER) or None
        nominal: datetime | Response | None = None
        if isinstance(token, TriggerToken):
            refused = self._admit_trigger(token, application_id, key)
            if refused is not None:
                return refused
            trigger, scheduled = Trigger(token.trigger), None
        elif isinstance(token, OccurrenceToken):
            trigger = Trigger.SCHEDULER
            nominal = self._admit(token, application_id)
        elif (occurrence := request.GET.get('occurrence')) is not None:
            nominal = self._nearest(job, application_id, occurrence)
        if isinstance(nominal, Response):
            return nominal
        if nominal is not None:
            key = key or uuid.uuid4().hex
            refused = self._claim(job, application_id, nominal, key)
            if refused is not None:
                return refused
            scheduled = nominal
        locked = job.overlap != 'allow'
        if locked:
            # one run of a job per host at a time, across processes
            try:
                free = self._locks.acquire(application_id, job.name,
                                           blocking=job.overlap == 'wait')
            except OSError as exc:  # the lock's directory or file is wrong
                self._reporter.failure(
                    job.name, application_id,
                    f'not run, its lock cannot be taken: {exc}')
                return _plain(503, 'Service Unavailable: the job lock '
                              'cannot be taken (see the log)')
            if not free:
                log.info('job %s (%s) is still running: not run again',
                         job.name, application_id)
                self._history.record(
                    application_id, job.name, trigger=trigger,
                    outcome=Outcome.SKIPPED, scheduled=scheduled,
                    http_status=409, output='skipped: still running',
                    key=key)
                return _plain(409, 'Conflict: the job is still running')
        try:
            try:
                run_id = self._history.started(application_id, job.name,
                                               trigger=trigger,
                                               scheduled=scheduled, key=key)
            except RunKeyTaken as taken:  # a repeated or forged call
                log.info('job %s (%s): run %d has started with the call\'s '
                         'run key already, not run again', job.name,
                         application_id, taken.run_id)
                return _plain(409, 'Conflict: this run key has started '
                              'already')
            return self._run(job, request, application_id, run_id)
        finally:
            if locked:
                self._locks.release(application_id, job.name)

    def _admit(self, token: OccurrenceToken,
               application_id: str) -> datetime | Response:
        """The occurrence a token stands for, or why it may not run now."""
        if token.application_id != application_id:
            # as for a bad token: nothing says the token is good elsewhere
            return _plain(404, 'Not Found')
        if not token.valid_at(self._clock(), self._occurrence_window):
            log.info('job %s (%s) at %s: the occurrence URL made at %s is '
                     'out of its window, not run', token.name,
                     application_id, token.occurrence.isoformat(),
                     token.issued.isoformat())
            return _plain(403, 'Forbidden: this job URL has expired')
        return token.occurrence

    def _admit_trigger(self, token: TriggerToken, application_id: str,
                       key: str | None) -> Response | None:
        """Why a trigger token may not run now, or None if it may."""
        if token.application_id != application_id:
            return _plain(404, 'Not Found')  # as for a bad token
        if not token.valid_at(self._clock(), self._occurrence_window):
            log.info('job %s (%s): the %s URL due at %s is out of its '
                     'window, not run', token.name, application_id,
                     token.trigger, token.due.isoformat())
            return _plain(403, 'Forbidden: this job URL has expired')
        if not token.accepts(key):
            log.info('job %s (%s): a %s URL called without its run key, '
                     'not run', token.name, application_id, token.trigger)
            return _plain(403, 'Forbidden: this job URL needs its run key')
        return None

    def _nearest(self, job: Job, application_id: str,
                 occurrence: str) -> datetime | Response:
        """The occurrence ``?occurrence=`` names, or why there is none."""
        if occurrence != 'nearest':
            return _plain(400, "Bad Request: occurrence must be 'nearest'")
        schedule = self._schedule_of(job, application_id)
        if schedule is None:
            return _plain(400, 'Bad Request: the job has no schedule, so '
                          'no occurrences')
        nominal = nearest(schedule, self._clock())
        if nominal is None:
            return _plain(400, 'Bad Request: no occurrence of the job '
                          'within an hour of now')
        return nominal

    def _claim(self, job: Job, application_id: str, nominal: datetime,
               key: str) -> Response | None:
        """Claim the occurrence ``nominal`` for the run ``key``; the
        refusal if another run holds it, None if it may run.

        Without a store nothing is claimed: it just runs.
        """
        won = claim(self._history, application_id, job.name, nominal, key,
                    self._clock())
        if won is None:
            return _plain(503, 'Service Unavailable: the run store cannot '
                          'be reached, so the run cannot be claimed')
        if won is False:
            log.info('job %s (%s) at %s: already claimed, not run again',
                     job.name, application_id, nominal.isoformat())
            return _plain(409, f'Conflict: the occurrence '
                          f'{nominal.isoformat()} has run already')
        return None

    def _run(self, job: Job, request: Request, application_id: str,
             run_id: int | None) -> Response:
        started = time.monotonic()
        error = None
        # what the job logs or raises may quote its own URL (request.url)
        token = _token_of(request)
        # sentry crons
        checkin = self.checkins.start(job, application_id,
                                       self._schedule_of)
        with captured() as lines, redacting(token):
            try:
                result = job.func(request)
            except Exception as exc:
                checkin.exception = exc  # sentry crons
                self._reporter.failure(job.name, application_id,
                                       f'{type(exc).__name__} raised', exc)
                error = ''.join(traceback.format_exception(exc))
        duration = time.monotonic() - started
        if duration > self._slow_after:
            self._reporter.slow(job.name, application_id, duration,
                                self._slow_after)
        output = '\n'.join(lines)
        if error is None and result is not None:
            output = f'{output}\n{result}' if output else str(result)
        output = output.replace(token, REDACTED)
        if error is not None:
            error = error.replace(token, REDACTED)
        outcome = Outcome.FAILED if error else Outcome.OK
        self._history.finished(
            run_id, outcome=outcome, http_status=500 if error else 200,
            output=output, error=error)
        checkin.finish(duration, output=output, error=error)  # sentry crons
        if self._notify is not None:
            self._notify(job, application_id, outcome, output=output,
                         error=error, duration=duration)
        if error is not None:
            response = _plain(500, 'Internal Server Error')
            response.headers[REPORTED_HEADER] = 'failure'
            return response
        log.debug('job %s (%s) ran in %.3fs', job.name, application_id,
                  duration)
        if job.then and self._chain is not None:
            self._chain(job, request, application_id)
        return _plain(200, encodable(result) if isinstance(result, str)
                      else 'OK')

    def close(self) -> None:
        """Close the job lock files no run holds (they reopen on use)."""
        self._locks.close()

    def __repr__(self) -> str:
        return f'<JobEndpoint {self.prefix!r}>'
