"""E-mail about runs: on failure (the default), on every run with output,
or never, per job. The only module that imports :mod:`smtplib`.

Mail goes out from one background thread, so a slow or unreachable mail
server never holds up a job's request or the scheduler; a failure to send
is logged and reported, never raised.
"""

from __future__ import annotations

import logging
import os
import queue
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from .job import Job
from .reporting import Reporter
from .store import Outcome

log = logging.getLogger(__name__)

#: how ``tls=`` may be set
TLS_MODES = (None, 'starttls', 'ssl')


@dataclass(frozen=True)
class SmtpSettings:
    """Where and as whom onecron sends its mail.

    :param sender: the From address
    :param recipients: the To addresses
    :param host: the SMTP server
    :param port: its port (25, 587 with ``starttls``, 465 with ``ssl``)
    :param tls: None, ``'starttls'`` or ``'ssl'``
    :param username: for SMTP AUTH, with ``password``
    :param timeout: seconds allowed per connection
    """

    sender: str
    recipients: Sequence[str]
    host: str = 'localhost'
    port: int = 25
    tls: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0

    def __post_init__(self) -> None:
        if self.tls not in TLS_MODES:
            raise ValueError(f'tls must be None, "starttls" or "ssl", '
                             f'got {self.tls!r}')
        if isinstance(self.recipients, str) or not self.recipients:
            raise ValueError(f'recipients must be a non-empty list of '
                             f'addresses, got {self.recipients!r}')
        if '@' not in self.sender:
            raise ValueError(f'sender must be an address, '
                             f'got {self.sender!r}')
        if (self.username is None) != (self.password is None):
            raise ValueError('give both username and password, or neither')


class Notify(Protocol):
    """Mails about a finished run (as :meth:`Mailer.notify` does)."""

    def __call__(self, job: Job, application_id: str, outcome: Outcome, *,
                 output: str = '', error: str | None = None,
                 duration: float | None = None) -> None: ...


def should_mail(job: Job, outcome: Outcome, output: str) -> bool:
    """Whether a run of ``job`` that ended so is mailed."""
    if job.notify == 'never':
        return False
    failed = outcome in (Outcome.FAILED, Outcome.TIMED_OUT)
    return failed or (job.notify == 'always' and bool(output.strip()))


class Mailer:
    """Sends run reports through SMTP from a background thread."""

    def __init__(self, settings: SmtpSettings, *,
                 reporter: Reporter) -> None:
        self.settings = settings
        self._reporter = reporter
        self._queue: queue.Queue[EmailMessage | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._mutex = threading.Lock()

    def notify(self, job: Job, application_id: str, outcome: Outcome, *,
               output: str = '', error: str | None = None,
               duration: float | None = None) -> None:
        """Mail about a run, if the job's ``notify`` asks for it."""
        if not should_mail(job, outcome, output + (error or '')):
            return
        message = EmailMessage()
        message['Subject'] = (f'[onecron] {job.name} ({application_id}): '
                              f'{outcome.value}')
        message['From'] = self.settings.sender
        message['To'] = ', '.join(self.settings.recipients)
        took = '' if duration is None else f'Duration: {duration:.1f}s\n'
        message.set_content(
            f'Job: {job.name}\nApplication: {application_id}\n'
            f'Outcome: {outcome.value}\n{took}'
            f'Host: {socket.gethostname()} (pid {os.getpid()})\n\n'
            f'Output:\n{output or "(none)"}\n'
            + (f'\nError:\n{error}\n' if error else ''))
        with self._mutex:
            if self._thread is None or self._pid != os.getpid():
                self._pid = os.getpid()
                self._thread = threading.Thread(
                    target=self._run, name='onecron-mail', daemon=True)
                self._thread.start()
        self._queue.put(message)

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then end the thread."""
        with self._mutex:
            thread, self._thread = self._thread, None
        if thread is not None and self._pid == os.getpid():
            self._queue.put(None)
            thread.join(timeout)

    def _run(self) -> None:
        while (message := self._queue.get()) is not None:
            try:
                self._send(message)
            except (OSError, smtplib.SMTPException) as exc:
                self._reporter.failure(
                    '*', '*', f'mail to {message["To"]} failed: {exc}', exc)

    def _send(self, message: EmailMessage) -> None:
        settings = self.settings
        smtp: smtplib.SMTP
        if settings.tls == 'ssl':
            smtp = smtplib.SMTP_SSL(settings.host, settings.port,
                                    timeout=settings.timeout,
                                    context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.host, settings.port,
                                timeout=settings.timeout)
        with smtp:
            if settings.tls == 'starttls':
                smtp.starttls(context=ssl.create_default_context())
            if settings.username is not None and settings.password:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)
        log.info('mailed %r', message['Subject'])

    def __repr__(self) -> str:
        return (f'<Mailer {self.settings.host}:{self.settings.port} to '
                f'{", ".join(self.settings.recipients)}>')
