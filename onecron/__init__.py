"""onecron: cron jobs that run inside your WSGI application.

Each job runs as an ordinary request behind a signed URL, exactly once per
host, on time, in its own time zone.
"""

from .app import CronApp as CronApp
from .caller import CallResult as CallResult
from .caller import Caller as Caller
from .errors import DuplicateJob as DuplicateJob
from .errors import InvalidSchedule as InvalidSchedule
from .errors import LockError as LockError
from .errors import OnecronError as OnecronError
from .errors import UnknownJob as UnknownJob
from .job import Job as Job
from .mail import SmtpSettings as SmtpSettings
from .reporting import Reporter as Reporter
from .schedule import Schedule as Schedule
from .store import Outcome as Outcome
from .store import Run as Run
from .store import RunKeyTaken as RunKeyTaken
from .store import Store as Store
from .store import StoreError as StoreError
from .store import Trigger as Trigger

__version__ = '0.1.0'
__all__ = ['CallResult', 'Caller', 'CronApp', 'DuplicateJob',
           'InvalidSchedule', 'Job', 'LockError', 'OnecronError', 'Outcome',
           'Reporter', 'Run', 'RunKeyTaken', 'Schedule', 'SmtpSettings',
           'Store', 'StoreError', 'Trigger', 'UnknownJob', '__version__']
