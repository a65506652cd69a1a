"""E-mail about runs: on failure (the default), on every run with output,
or never, per job. The only module that imports :mod:`smtplib`.

Mail goes out from one background thread, so a slow or unreachable mail
server never holds up a job's request or the scheduler; a failure to make
or send a mail is logged and reported, never raised.

What a run puts in a mail is made safe first: undecodable bytes a job
printed (lone surrogates, which UTF-8 cannot encode) are written as
``\\udcff``, and line breaks in a header value (an application id, a job
name) become spaces, so they can neither break the mail nor add headers.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import smtplib
import socket
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

from onecron.job import Job
from onecron.reporting import Reporter
from onecron.stores.base import Outcome
from onecron.text import encodable

log = logging.getLogger(__name__)

#: how ``tls=`` may be set
TLS_MODES = (None, 'starttls', 'ssl')

# what a header value must not hold: line breaks of every kind the email
# package knows (it refuses them) and the other control characters
_CONTROLS = re.compile('[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]+')


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
        _check_address('sender', self.sender)
        for recipient in self.recipients:
            _check_address('recipients', recipient)
        if (self.username is None) != (self.password is None):
            raise ValueError('give both username and password, or neither')


def _check_address(setting: str, address: object) -> None:
    """Refuse an address that could never go into a mail header."""
    if not isinstance(address, str) or '@' not in address:
        raise ValueError(f'{setting} must be an address, got {address!r}')
    if _CONTROLS.search(address):
        raise ValueError(f'{setting}: {address!r} holds a line break or '
                         f'another control character')
    try:
        EmailMessage()['To'] = address
    except Exception:  # the email package fails on some: 'ops@[example'
        raise ValueError(f'{setting}: {address!r} is not an address the '
                         f'email package can write') from None


def _header(value: str) -> str:
    """``value`` made safe for one header line: each run of line breaks
    and control characters becomes a space."""
    return _CONTROLS.sub(' ', encodable(value))


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
        """Mail about a run, if the job's ``notify`` asks for it.

        Never raises: a mail that cannot be made is reported (log and
        Sentry) and the run, its answer and its ``then`` jobs go on.
        """
        try:
            if not should_mail(job, outcome, output + (error or '')):
                return
            message = self._message(job, application_id, outcome,
                                    output=output, error=error,
                                    duration=duration)
            with self._mutex:
                if self._thread is None or self._pid != os.getpid():
                    self._pid = os.getpid()
                    self._thread = threading.Thread(
                        target=self._run, name='onecron-mail', daemon=True)
                    self._thread.start()
            self._queue.put(message)
        except Exception as exc:
            self._reporter.failure(
                job.name, application_id,
                f'the mail about a run ({outcome.value}) could not be '
                f'made: {type(exc).__name__}: {exc}', exc)

    def _message(self, job: Job, application_id: str, outcome: Outcome, *,
                 output: str, error: str | None,
                 duration: float | None) -> EmailMessage:
        message = EmailMessage()
        message['Subject'] = _header(f'[onecron] {job.name} '
                                     f'({application_id}): {outcome.value}')
        message['From'] = self.settings.sender
        message['To'] = ', '.join(self.settings.recipients)
        took = '' if duration is None else f'Duration: {duration:.1f}s\n'
        # the body may hold line breaks, but a name or id must not start
        # a line of its own
        message.set_content(encodable(
            f'Job: {_header(job.name)}\n'
            f'Application: {_header(application_id)}\n'
            f'Outcome: {outcome.value}\n{took}'
            f'Host: {socket.gethostname()} (pid {os.getpid()})\n\n'
            f'Output:\n{output or "(none)"}\n'
            + (f'\nError:\n{error}\n' if error else '')))
        return message

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
            except Exception as exc:  # this thread must live on
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
