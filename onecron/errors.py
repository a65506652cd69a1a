"""The error tree: one root, leaves that also subclass the fitting built-in."""

from __future__ import annotations


class OnecronError(Exception):
    """Root of every error onecron raises on purpose."""


class InvalidSchedule(OnecronError, ValueError):
    """A schedule that cannot be parsed, is out of range, or can never fire.

    Raised at registration time, so a bad schedule fails at import and not
    at 03:00. The message names the field, the value and the allowed range.
    """

    def __init__(self, message: str, *, field: str | None = None,
                 value: object = None) -> None:
        super().__init__(message)
        #: the field that was wrong (``'hour'``, ``'expr'``, ...), if known
        self.field = field
        #: the offending value as given
        self.value = value


class DuplicateJob(OnecronError, ValueError):
    """A job name registered twice on the same :class:`~onecron.CronApp`."""


class UnknownJob(OnecronError, KeyError):
    """A job name that is not registered."""


class UntranslatableSchedule(OnecronError, ValueError):
    """A schedule another scheduler (cron, Kubernetes, systemd) cannot
    express: seconds in cron, Quartz's ``L``, ``W`` or ``#``, an interval
    that does not divide a day. The message names the part and the reason.
    """


class LockError(OnecronError, OSError):
    """A host or job lock that cannot be used.

    Its directory cannot be created or is not private (a symbolic link,
    another user's, writable by others), or its file is not a regular
    file of this user (a symbolic link, a directory, another user's), or
    it cannot be locked. The message names the path and what is wrong.
    """

    def __init__(self, message: str, path: str,
                 errno: int | None = None) -> None:
        super().__init__(message)
        #: the directory or lock file that is wrong
        self.path = path
        if errno is not None:
            self.errno = errno


class StoreError(OnecronError, RuntimeError):
    """The store could not be read or written: locked past its timeout, disk
    full, file removed or unwritable, schema newer than this onecron.

    The message names the store; ``__cause__`` is the backend's error.
    """

    def __init__(self, message: str, *, location: str | None = None) -> None:
        super().__init__(message)
        #: the store's path (or secret-free address), if known
        self.location = location


class RunKeyTaken(OnecronError, ValueError):
    """A run was started with the key of a run that has started already.

    Run keys are unique per application id and job: the first start of a
    key is the run (a run only recorded under that key, say timed out by
    the scheduler before its call arrived, is the one that starts); any
    other start with that key is a repeated or forged call, and the
    endpoint answers 409 without running the job. The message names the
    job and the run, never the key (a caller's, perhaps secret).
    """

    def __init__(self, application_id: str, job: str, run_id: int) -> None:
        super().__init__(f'a run of job {job!r} ({application_id}) has '
                         f'started with this key already: run {run_id}')
        self.application_id = application_id
        self.job = job
        #: the run that started with the key
        self.run_id = run_id
