"""The headers the scheduler sends with a job call, and how they are read.

They say which occurrence a call stands for, who triggered it, and a run
key that lets the scheduler mark a run it timed out. They are informative
(anyone holding a job URL can send them): they label history. Only the
run key ever decides whether a job runs: a trigger URL (static URLs off)
runs only for the key whose digest it holds, and an occurrence URL's
claim is made with it.
"""

from __future__ import annotations

from datetime import datetime

from webob import Request

from onecron.stores.base import Trigger

#: the nominal occurrence (before jitter) a call stands for, ISO 8601
OCCURRENCE_HEADER = 'X-Onecron-Occurrence'
#: who triggered the call: scheduler, soon, chain or manual
TRIGGER_HEADER = 'X-Onecron-Trigger'
#: a unique key for the run, chosen by the caller
RUN_HEADER = 'X-Onecron-Run'
#: on a job's answer: the endpoint has reported the failure itself (log,
#: Sentry), so the scheduler that called it does not report it again
REPORTED_HEADER = 'X-Onecron-Reported'

_TRIGGERS = {trigger.value: trigger for trigger in Trigger}


def trigger_of(request: Request) -> tuple[Trigger, datetime | None]:
    """Who triggered ``request`` and, for the scheduler, which occurrence.

    A call without (valid) headers is an external one: ``Trigger.URL``.
    """
    trigger = _TRIGGERS.get(request.headers.get(TRIGGER_HEADER, ''),
                            Trigger.URL)
    scheduled = None
    if trigger is Trigger.SCHEDULER:
        try:
            scheduled = datetime.fromisoformat(
                request.headers.get(OCCURRENCE_HEADER, ''))
        except ValueError:
            scheduled = None
        if scheduled is not None and scheduled.tzinfo is None:
            scheduled = None
    return trigger, scheduled
