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
