"""Mail about runs, through a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

import onecron.running.mail
from onecron import CronApp
from onecron.running.mail import SmtpSettings
from onecron.stores.base import Outcome

from .conftest import wait_for


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any,
                          envelope: Any) -> str:
        self.recipients += envelope.rcpt_tos
        self.messages.append(email.message_from_bytes(envelope.content))
        return '250 OK'


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    port = free_port()
    controller = Controller(handler, hostname='127.0.0.1', port=port)
    controller.start()
    yield handler, port
    controller.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        port: int = sock.getsockname()[1]
    return port


def make_app(tmp_path: Path, port: int, **options: Any) -> CronApp:
    options.setdefault('enabled', False)
    return CronApp(secret='a mail test secret, 32 characters long', lock_dir=str(tmp_path),
                   smtp=SmtpSettings(sender='cron@example.org',
                                     recipients=['ops@example.org'],
                                     host='127.0.0.1', port=port),
                   **options)


def body_of(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode('utf-8')


def run(app: CronApp, name: str, url: str) -> None:
    try:
        with urllib.request.urlopen(app.url_for(name, url)):
            pass
    except urllib.error.HTTPError:
        pass


def test_failure_is_mailed_with_the_traceback(
        tmp_path: Path, inbox: tuple[Inbox, int], live_server: Any) -> None:
    """notify='failure' (default): a failed run is mailed, an ok one not."""
    handler, port = inbox
    app = make_app(tmp_path, port)
    app.cronjob(name='fine')(lambda r: 'all good')
    app.cronjob(name='broken')(lambda r: {}['missing'])
    url = live_server(app).url
    run(app, 'fine', url)
    run(app, 'broken', url)
    [message] = wait_for(lambda: handler.messages)
    assert message['Subject'] == '[onecron] broken (default): failed'
    assert message['From'] == 'cron@example.org'
    assert message['To'] == 'ops@example.org'
    body = message.get_payload()
    assert 'Outcome: failed' in body and "KeyError: 'missing'" in body
    app.mailer.close()  # type: ignore[union-attr]
    assert len(handler.messages) == 1


def test_always_mails_runs_with_output(tmp_path: Path,
                                       inbox: tuple[Inbox, int],
                                       live_server: Any) -> None:
    """notify='always': every run with output; notify='never': none."""
    handler, port = inbox
    app = make_app(tmp_path, port)
    app.cronjob(name='report', notify='always')(lambda r: '42 invoices')
    app.cronjob(name='silent', notify='always')(lambda r: None)
    app.cronjob(name='quiet', notify='never')(lambda r: 1 / 0)
    url = live_server(app).url
    for name in ('report', 'silent', 'quiet'):
        run(app, name, url)
    [message] = wait_for(lambda: handler.messages)
    app.mailer.close()  # type: ignore[union-attr]
    assert len(handler.messages) == 1
    assert message['Subject'] == '[onecron] report (default): ok'
    assert '42 invoices' in message.get_payload()


def test_unreachable_mail_server_is_reported_not_raised(
        tmp_path: Path, live_server: Any, caplog: Any) -> None:
    """A mail server that refuses: the run still answers, the error is
    logged."""
    app = make_app(tmp_path, free_port())
    app.cronjob(name='broken')(lambda r: 1 / 0)
    run(app, 'broken', live_server(app).url)
    wait_for(lambda: any('mail to ops@example.org failed' in r.getMessage()
                         for r in caplog.records))


# the job's undecodable line reaches the run's output (which captures
# records as they are made) and not pytest's log capture, whose reports
# pytest-xdist cannot send between processes with a surrogate in them:
# a logger outside the logging tree, which pytest's handlers never join
_JOB_LOG = logging.Logger('job.first')
_JOB_LOG.addHandler(logging.NullHandler())


def chained_app(tmp_path: Path, port: int,
                ran: list[str]) -> CronApp:
    """An app whose job 'first' logs text with an undecodable byte, mails
    every run with output, and runs 'second' after it."""
    app = make_app(tmp_path, port, enabled=True)

    @app.cronjob(name='first', notify='always', then=['second'])
    def first(request: Any) -> None:
        _JOB_LOG.warning(
            'read %s', b'caf\xff'.decode('utf-8', 'surrogateescape'))

    app.cronjob(name='second')(lambda request: ran.append('second'))
    return app


def run_first(app: CronApp, url: str) -> int:
    app.base_url = url  # where the then= job is called
    with urllib.request.urlopen(app.url_for('first', url)) as response:
        status: int = response.status
    return status


def test_surrogates_are_mailed_escaped_and_the_chain_runs(
        tmp_path: Path, inbox: tuple[Inbox, int], live_server: Any) -> None:
    """Undecodable bytes in a run's output reach the mail as \\udcff; the
    run answers 200 and its then= job runs."""
    handler, port = inbox
    ran: list[str] = []
    app = chained_app(tmp_path, port, ran)
    try:
        assert run_first(app, live_server(app).url) == 200
        wait_for(lambda: ran == ['second'])
        [message] = wait_for(lambda: handler.messages)
    finally:
        app.stop()
        app.mailer.close()  # type: ignore[union-attr]
    assert message['Subject'] == '[onecron] first (default): ok'
    assert 'WARNING job.first: read caf\\udcff' in body_of(message)


def test_line_breaks_in_an_application_id_add_no_header(
        tmp_path: Path, inbox: tuple[Inbox, int], live_server: Any) -> None:
    """A CR/LF in an application id becomes a space: the mail arrives, with
    no header or recipient added. (CronApp refuses such ids; the mailer
    does not rely on it.)"""
    handler, port = inbox
    app = make_app(tmp_path, port)
    app.cronjob(name='broken')(lambda r: 1 / 0)
    assert app.mailer is not None
    app.mailer.notify(app.jobs['broken'],
                      'tenant\r\nBcc: evil@example.org\n',
                      Outcome.FAILED, error='ZeroDivisionError')
    [message] = wait_for(lambda: handler.messages)
    app.mailer.close()  # type: ignore[union-attr]
    assert message['Subject'] == (
        '[onecron] broken (tenant Bcc: evil@example.org ): failed')
    assert message['Bcc'] is None
    assert handler.recipients == ['ops@example.org']
    assert 'Application: tenant Bcc: evil@example.org ' in (
        body_of(message).splitlines())


def test_a_mail_that_cannot_be_made_is_reported_and_the_run_goes_on(
        tmp_path: Path, inbox: tuple[Inbox, int], live_server: Any,
        monkeypatch: Any, caplog: Any,
        sentry_events: list[dict[str, Any]]) -> None:
    """notify never raises: when the email package fails on a message, the
    failure is logged and sent to Sentry once, and the run answers 200 and
    runs its then= job."""
    class Failing(onecron.running.mail.EmailMessage):
        def set_content(self, *args: Any, **kwargs: Any) -> None:
            # what the email package raises on some addresses
            raise AttributeError("'InvalidHeaderDefect' object has no "
                                 "attribute 'all_defects'")

    monkeypatch.setattr(onecron.running.mail, 'EmailMessage', Failing)
    handler, port = inbox
    ran: list[str] = []
    app = chained_app(tmp_path, port, ran)
    try:
        with caplog.at_level(logging.ERROR, logger='onecron'):
            assert run_first(app, live_server(app).url) == 200
            wait_for(lambda: ran == ['second'])
    finally:
        app.stop()
    [record] = [r for r in caplog.records if r.name.startswith('onecron')]
    assert 'the mail about a run (ok) could not be made' in (
        record.getMessage())
    [event] = sentry_events
    assert event['exception']['values'][0]['type'] == 'AttributeError'
    assert event['tags']['onecron.job'] == 'first'
    assert handler.messages == []


def test_a_refusing_mail_server_is_reported_and_the_chain_runs(
        tmp_path: Path, live_server: Any,
        sentry_events: list[dict[str, Any]]) -> None:
    """A mail server that refuses the connection: one Sentry event, and
    the run still answers 200 and runs its then= job."""
    ran: list[str] = []
    app = chained_app(tmp_path, free_port(), ran)
    try:
        assert run_first(app, live_server(app).url) == 200
        wait_for(lambda: ran == ['second'])
        wait_for(lambda: sentry_events)
    finally:
        app.stop()
        app.mailer.close()  # type: ignore[union-attr]
    [event] = sentry_events
    exception = event['exception']['values'][0]
    assert exception['type'] == 'ConnectionRefusedError'


@pytest.mark.parametrize('options, fragment', [
    ({'tls': 'yes'}, 'tls'),
    ({'recipients': 'ops@example.org'}, 'recipients'),
    ({'sender': 'nobody'}, 'sender'),
    ({'username': 'u'}, 'password'),
    ({'sender': 'cron@example.org\r\nBcc: evil@example.org'},
     'sender: .* holds a line break'),
    ({'recipients': ['ops@example.org\nBcc: evil@example.org']},
     'recipients: .* holds a line break'),
    ({'recipients': ['ops@example.org', 'nobody']},
     "recipients must be an address, got 'nobody'"),
    ({'recipients': ['ops@[example.org']},
     'not an address the email package can write'),
], ids=['tls', 'recipients-str', 'sender', 'half-credentials',
        'sender-crlf', 'recipient-lf', 'recipient-no-at',
        'recipient-unwritable'])
def test_bad_settings_fail_at_construction(options: dict[str, Any],
                                           fragment: str) -> None:
    """Bad SMTP settings fail when configured, naming the setting."""
    settings: dict[str, Any] = {'sender': 'cron@example.org',
                                'recipients': ['ops@example.org']}
    settings.update(options)
    with pytest.raises(ValueError, match=fragment):
        SmtpSettings(**settings)
