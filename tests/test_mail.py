"""Mail about runs, through a real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from onecron import CronApp
from onecron.mail import SmtpSettings

from .conftest import wait_for


class Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any,
                          envelope: Any) -> str:
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


def make_app(tmp_path: Path, port: int) -> CronApp:
    return CronApp(secret='s', lock_dir=str(tmp_path), enabled=False,
                   smtp=SmtpSettings(sender='cron@example.org',
                                     recipients=['ops@example.org'],
                                     host='127.0.0.1', port=port))


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


@pytest.mark.parametrize('options, fragment', [
    ({'tls': 'yes'}, 'tls'),
    ({'recipients': 'ops@example.org'}, 'recipients'),
    ({'sender': 'nobody'}, 'sender'),
    ({'username': 'u'}, 'password'),
], ids=['tls', 'recipients-str', 'sender', 'half-credentials'])
def test_bad_settings_fail_at_construction(options: dict[str, Any],
                                           fragment: str) -> None:
    """Bad SMTP settings fail when configured, naming the setting."""
    settings: dict[str, Any] = {'sender': 'cron@example.org',
                                'recipients': ['ops@example.org']}
    settings.update(options)
    with pytest.raises(ValueError, match=fragment):
        SmtpSettings(**settings)
