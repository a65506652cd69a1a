"""The status page in a real headless Chromium, against a real server."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright
from webob import Request

from onecron import CronApp
from onecron.clock import utcnow

from .conftest import LiveServer


CHROMIUM = shutil.which('chromium')
ARTIFACTS = Path(__file__).resolve().parent.parent / 'artifacts'

pytestmark = pytest.mark.skipif(CHROMIUM is None,
                                reason='chromium is not installed')


@pytest.fixture
def page() -> Iterator[Page]:
    """A fresh headless Chromium page; console errors fail the test."""
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=['--no-sandbox', '--disable-gpu',
                  '--disable-background-networking',
                  '--disable-component-update', '--no-first-run'])
        try:
            page = browser.new_page(viewport={'width': 1400, 'height': 900})
            page.on('console', lambda message: errors.append(message.text)
                    if message.type == 'error' else None)
            yield page
        finally:
            browser.close()
    assert errors == []  # a CSP violation, say, shows up here


def job_row(page: Page, job: str) -> Locator:
    """The row of ``job`` in the default application's table."""
    return page.locator(f'#app-default tr[data-job="{job}"]')


def test_run_now_shows_up_in_the_history(
        page: Page, tmp_path: Path,
        live_server: Callable[..., LiveServer]) -> None:
    """Open the page, see the jobs, press Run now, and find the new run
    in the job's history."""
    app = CronApp(secret='browser test', store=tmp_path / 'runs.db',
                  clock=utcnow, lock_dir=str(tmp_path))

    @app.cronjob(hour=8, minute=30, timezone='Europe/Zurich',
                 name='morning_report')
    def morning_report(request: Request) -> None:
        pass

    @app.cronjob('*/15 * * * MON-FRI', name='import_feed')
    def import_feed(request: Request) -> None:
        pass

    @app.cronjob(name='clean_up')
    def clean_up(request: Request) -> str:
        return 'deleted 3 expired rows'

    server = live_server(app)
    app.start(base_url=server.url)
    try:
        page.goto(f'{server.url}/cronjobs/')
        expect(job_row(page, 'morning_report')).to_contain_text(
            'at 08:30 every day, Europe/Zurich')
        expect(job_row(page, 'import_feed')).to_contain_text(
            '*/15 * * * MON-FRI')
        expect(job_row(page, 'clean_up')).to_contain_text('manual only')
        expect(page.locator('#app-default')).to_contain_text('scheduler')

        job_row(page, 'clean_up').get_by_role('button',
                                              name='Run now').click()
        expect(page.locator('.notice')).to_contain_text(
            'Run of clean_up requested')

        page.get_by_role('link', name='clean_up').click()
        expect(page.locator('h1')).to_contain_text('clean_up')
        runs = page.locator('tr[id^="run-"]')
        deadline = time.monotonic() + 10
        while not runs.filter(has_text='ok').count():
            assert time.monotonic() < deadline, 'the run did not show up'
            page.wait_for_timeout(100)
            page.reload()
        expect(runs.first).to_contain_text('soon')
        expect(runs.first).to_contain_text('200')
        expect(page.locator('pre').first).to_have_text(
            'deleted 3 expired rows')

        page.get_by_role('link', name='← all jobs').click()
        expect(job_row(page, 'clean_up')).to_contain_text('ok')
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=ARTIFACTS / 'status-page.png', full_page=True)
    finally:
        app.stop()
