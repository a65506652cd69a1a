"""onecron: cron jobs that run inside your WSGI application.

Each job runs as an ordinary request behind a signed URL, exactly once per
host, on time, in its own time zone.
"""

from onecron.app import CronApp as CronApp
from onecron.errors import DuplicateJob as DuplicateJob
from onecron.errors import InvalidSchedule as InvalidSchedule
from onecron.errors import LockError as LockError
from onecron.errors import OnecronError as OnecronError
from onecron.errors import UnknownJob as UnknownJob
from onecron.job import Job as Job
from onecron.reporting import Reporter as Reporter
from onecron.running.caller import Caller as Caller
from onecron.running.caller import CallResult as CallResult
from onecron.running.mail import SmtpSettings as SmtpSettings
from onecron.schedule.rules import Schedule as Schedule
from onecron.stores.base import Outcome as Outcome
from onecron.stores.base import Run as Run
from onecron.stores.base import RunKeyTaken as RunKeyTaken
from onecron.stores.base import Store as Store
from onecron.stores.base import StoreError as StoreError
from onecron.stores.base import Trigger as Trigger

__version__ = '0.1.0'
__all__ = ['CallResult', 'Caller', 'CronApp', 'DuplicateJob',
           'InvalidSchedule', 'Job', 'LockError', 'OnecronError', 'Outcome',
           'Reporter', 'Run', 'RunKeyTaken', 'Schedule', 'SmtpSettings',
           'Store', 'StoreError', 'Trigger', 'UnknownJob', '__version__']
