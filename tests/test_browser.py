"""The status page in a real headless Chromium, against a real server."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Locator, Page, expect, sync_playwright
from webob import Request

from onecron import CronApp
from onecron.schedule.clock import utcnow

from .conftest import LiveServer

CHROMIUM = shutil.which('chromium')
ARTIFACTS = Path(__file__).resolve().parent.parent / 'artifacts'
#: the status page as the documentation shows it, made by this test
DOCS_SCREENSHOT = (Path(__file__).resolve().parent.parent / 'docs'
                   / '_static' / 'status-page.png')

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


#: job names as long as real ones: the default name is module.qualname
MORNING = 'example_app.app.morning_report'
FEED = 'example_app.app.import_feed'
CLEAN_UP = 'example_app.app.clean_up_sessions'
REBUILD = 'example_app.app.rebuild_search_index'

#: what on the page spills out: the page or a card scrolling sideways,
#: a control or link outside the viewport, or outside the table or card
#: it is in (where a table's overflow would hide it)
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const root = document.documentElement;
  const width = root.clientWidth;
  if (root.scrollWidth > width) {
    problems.push(`the page is ${root.scrollWidth} px wide, not ${width}`);
  }
  for (const box of document.querySelectorAll('section, .scroll, table')) {
    if (box.scrollWidth > box.clientWidth) {
      problems.push(`${box.tagName} ${box.className} scrolls sideways: ` +
                    `${box.scrollWidth} > ${box.clientWidth}`);
    }
  }
  const controls = 'button, summary, a, input:not([type=hidden])';
  for (const control of document.querySelectorAll(controls)) {
    const rect = control.getBoundingClientRect();
    if (!rect.width) continue;  // in a closed <details>
    const room = control.closest('.scroll, section');
    const outer = room ? room.getBoundingClientRect()
                       : {left: 0, right: width};
    const left = Math.max(0, outer.left), right = Math.min(width, outer.right);
    if (rect.left < left - 0.5 || rect.right > right + 0.5) {
      problems.push(`"${control.textContent || control.name}" spans ` +
                    `${rect.left}-${rect.right}, its room ${left}-${right}`);
    }
  }
  return problems;
}"""


def job_row(page: Page, job: str) -> Locator:
    """The rows of ``job`` in the default application's table."""
    return page.locator(f'#app-default [data-job="{job}"]')


def test_status_page_fits_and_run_now_shows_up_in_the_history(
        page: Page, tmp_path: Path,
        live_server: Callable[..., LiveServer]) -> None:
    """With job names as long as real ones, nothing spills out of the
    page at 1280 px or on a phone; press Run now, and find the new
    (manual) run in the job's history, which fits too."""
    app = CronApp(secret='browser test', store=tmp_path / 'runs.db',
                  clock=utcnow, lock_dir=str(tmp_path / 'locks'))

    @app.cronjob(hour=8, minute=30, timezone='Europe/Zurich', name=MORNING)
    def morning_report(request: Request) -> None:
        pass

    @app.cronjob('*/15 * * * MON-FRI', name=FEED)
    def import_feed(request: Request) -> None:
        pass

    @app.cronjob(hour=3, minute=0, name=CLEAN_UP)
    def clean_up_sessions(request: Request) -> None:
        pass

    @app.cronjob(name=REBUILD)
    def rebuild_search_index(request: Request) -> str:
        return 'deleted 3 expired rows'

    # the widest row: overridden and disabled, so it has every button
    app.override_schedule(CLEAN_UP, '0 4 * * *')
    app.set_enabled(CLEAN_UP, False)
    server = live_server(app)
    app.start(base_url=server.url)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.set_viewport_size({'width': 1280, 'height': 800})
        page.goto(f'{server.url}/cronjobs/')
        morning = job_row(page, MORNING)
        expect(morning).to_contain_text('at 08:30 every day, Europe/Zurich')
        # the next run in the job's zone, UTC on hover
        expect(morning.locator('time').first).to_contain_text(
            re.compile(r'\s08:30:\d\d\sCES?T$'))
        expect(morning.locator('time').first).to_have_attribute(
            'title', re.compile(r' 0[67]:30:\d\d UTC$'))
        expect(job_row(page, FEED)).to_contain_text('*/15 * * * MON-FRI')
        expect(job_row(page, REBUILD)).to_contain_text('manual only')
        expect(job_row(page, CLEAN_UP).locator('.next')).to_have_text(
            'disabled')
        expect(page.locator('#app-default')).to_contain_text('scheduler')
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        # rendered right: the picture in the docs' status page section,
        # renewed when asked for (it differs at every run: times, pids)
        if os.environ.get('ONECRON_SCREENSHOTS') == 'docs':
            page.screenshot(path=DOCS_SCREENSHOT, full_page=True)
        job_row(page, CLEAN_UP).get_by_text('Change schedule').click()
        expect(job_row(page, CLEAN_UP).get_by_role(
            'button', name='Override')).to_be_visible()
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        page.screenshot(path=ARTIFACTS / 'status-page.png', full_page=True)

        page.set_viewport_size({'width': 390, 'height': 800})
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        page.screenshot(path=ARTIFACTS / 'status-page-narrow.png',
                        full_page=True)
        page.set_viewport_size({'width': 1280, 'height': 800})

        job_row(page, REBUILD).get_by_role('button', name='Run now').click()
        expect(page.locator('.notice')).to_contain_text(
            f'Run of {REBUILD} requested')

        page.get_by_role('link', name=REBUILD).click()
        expect(page.locator('h1')).to_contain_text(REBUILD)
        runs = page.locator('tr[id^="run-"]')
        deadline = time.monotonic() + 10
        while not runs.filter(has_text='ok').count():
            assert time.monotonic() < deadline, 'the run did not show up'
            page.wait_for_timeout(100)
            page.reload()
        expect(runs.first).to_contain_text('manual')
        expect(runs.first).to_contain_text('200')
        expect(page.locator('pre').first).to_have_text(
            'deleted 3 expired rows')
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        page.screenshot(path=ARTIFACTS / 'status-history.png',
                        full_page=True)

        page.get_by_role('link', name='← all jobs').click()
        expect(job_row(page, REBUILD)).to_contain_text('ok')
    finally:
        app.stop()
