"""Catching up: what fell due while no scheduler ran, on taking over.

A scheduler that takes over (after a restart, or from a host that died)
first looks for occurrences that fell due while none ran, and runs or
records them per the jobs' ``misfire`` policy (:mod:`onecron.running.misfire`).
What was missed is logged and written down as one record per job, not one
per occurrence (see :mod:`onecron.stores.history`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from onecron.job import Job
from onecron.running.misfire import Plan, missed, plan
from onecron.running.runs import RunBook
from onecron.schedule.rules import Schedule
from onecron.stores.base import CLAIM_DAYS, Lease, Outcome
from onecron.stores.history import missed_summary

log = logging.getLogger('onecron.running.scheduler')

#: how old a claim without a run must be to count as lost: its call may
#: still be on its way until then
CLAIM_SETTLE = timedelta(seconds=3)


#: why occurrences were missed, in their record
WHILE_DOWN = 'while no scheduler ran'


class CatchUp(RunBook):
    """The catch-up of a scheduler that takes over (its base class)."""

    _lease_ttl: float
    #: per job, the occurrences the catch-up of this activation has
    #: run or written down: a second look does not count them again
    _caught_up: dict[str, set[datetime]]

    def _catch_up(self, before: Lease, now: datetime,
                  claimed_before: datetime) -> None:
        """Run or record what fell due since ``before`` was last renewed.

        The window starts a lease's length before that renewal (but not
        before that holder took over: what fell due earlier was its own
        catch-up's business) and ends ``now``. Occurrences nobody claimed
        are missed; so are those claimed before ``claimed_before`` whose
        run never started (the claimer died before its call arrived): they
        run under their claim's key. A job's replays run one after
        another, and its fires wait behind them (see :meth:`_in_line`).
        What a job missed is logged and written down once, as one range
        (see :meth:`_missed_while_down`).
        """
        since = max(before.renewed - timedelta(seconds=self._lease_ttl),
                    before.acquired, now - timedelta(days=CLAIM_DAYS))
        for job in list(self._jobs.values()):
            schedule = self.schedule_of(job)
            settings = self.settings.get(job.name)
            if schedule is None or job.once or (
                    settings is not None and not settings.enabled):
                continue
            try:
                found = missed(job, schedule, self.application_id, since,
                               now)
            except Exception as exc:  # one job's bug must not stop others
                self._reporter.failure(job.name, self.application_id,
                                       'could not look for missed runs', exc)
                continue
            if not found.occurrences:
                continue
            first, last = found.occurrences[0], found.occurrences[-1]
            # the lambdas run at once, inside this turn of the loop
            claimed = self._history.read(lambda store: store.claimed(  # noqa: B023
                self.application_id, job.name, first, last), None)  # noqa: B023
            lost = self._history.read(lambda store: store.unstarted_claims(
                self.application_id, job.name, first, last,  # noqa: B023
                claimed_before=claimed_before), None)
            if claimed is None or lost is None:
                continue  # unknown, so nothing is run twice
            keys = {occurrence: key for key, occurrence in lost.items()}
            told = job.name in self._caught_up  # by a first look
            done = self._caught_up.setdefault(job.name, set())
            older = 0 if told else found.older
            unclaimed = [occurrence for occurrence in found.occurrences
                         if (occurrence not in claimed or occurrence in keys)
                         and occurrence not in done]
            done.update(unclaimed)
            if unclaimed or older:
                self._missed_while_down(job, schedule, now, unclaimed, keys,
                                        older, found.first)

    def _missed_while_down(self, job: Job, schedule: Schedule,
                           now: datetime, unclaimed: list[datetime],
                           keys: dict[datetime, str], older: int,
                           oldest: datetime | None) -> None:
        """Run what the job's policy runs of ``unclaimed``; log and write
        down the whole range once: how many, from when to when, and what
        was done.

        ``keys``: the claims whose run never started, run (or written
        down) under their key; ``older``: occurrences before
        ``unclaimed`` that were only counted, the oldest ``oldest``.
        """
        what = plan('skip' if self.held else job.misfire, unclaimed,
                    now=now, grace=job.grace, schedule=schedule)
        key = uuid.uuid4().hex
        # claimed in one go for the one record, under its key: a second
        # look, or a successor, finds them taken and written down
        fresh = [occurrence for occurrence in what.missed
                 if occurrence not in keys]
        counted = self._claim_all(job, fresh, key)
        counted += [occurrence for occurrence in what.missed
                    if occurrence in keys]
        calls, refused = [], 0
        for occurrence in what.run:
            run_key = keys.get(occurrence) or uuid.uuid4().hex
            if not self._claim(job, occurrence, run_key):
                continue
            counted.append(occurrence)
            if self._should_run(job):
                calls.append(self._call(job, occurrence, run_key, None))
            else:
                refused += 1
                self._record(job, occurrence, run_key, Outcome.SKIPPED)
        if not counted and not older:
            return  # all claimed by others meanwhile
        counted.sort()
        last = counted[-1] if counted else oldest
        first = oldest if older or not counted else counted[0]
        if first is None or last is None:
            return  # not reached: ``older`` comes with ``oldest``
        why = WHILE_DOWN
        if older:
            why += (f' (the oldest {older} only counted: the newest '
                    f'{len(unclaimed)} were looked at)')
        summary = missed_summary(len(counted) + older, first, last, why,
                                 self._what_was_done(job, what, len(calls),
                                                     refused))
        log.info('job %s (%s): %s', job.name, self.application_id, summary)
        # no scheduled occurrence: the record stands for a range, whose
        # newest may well have run now, in a record of its own
        self._history.missed(self.application_id, job.name, first=first,
                             last=last, scheduled=None, summary=summary,
                             key=key)
        if calls:
            self._in_line(job, calls)

    def _what_was_done(self, job: Job, what: Plan, ran: int,
                       refused: int) -> str:
        """What the policy did about a job's missed range, in words."""
        if self.held:
            return 'jobs are held: none ran'
        if job.misfire == 'skip':
            return "misfire='skip': none ran"
        if not what.run:
            grace = what.grace.total_seconds() if what.grace else 0
            return (f'misfire={job.misfire!r}: the newest was older than '
                    f'its grace of {grace:g} s: none ran')
        if job.misfire == 'once':
            done = 'the newest ran now' if ran else 'the newest did not run'
        elif ran == len(what.run) and not what.missed:
            done = f'all {ran} ran now, oldest first'
        else:
            done = (f'the newest {ran} ran now, oldest first; the older '
                    f'{len(what.missed)} did not')
        if refused:
            done += f' (should_run said no to {refused})'
        return f'misfire={job.misfire!r}: {done}'
