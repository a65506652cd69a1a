"""The Morepath directive: registration at commit, and jobs run as views."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import dectate
import morepath
import pytest
from webob import Request, Response
from webob.exc import HTTPForbidden

from onecron import CronApp, InvalidSchedule, Reporter, Schedule
from onecron.morepath import CronjobAction, CronjobApp, cron_app

BASE = 'http://example.org'


class Failures(Reporter):
    """Keeps the failures it is told of."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def failure(self, job: str, application_id: str, message: str,
                exc: BaseException | None = None) -> None:
        self.messages.append(f'{job}: {message}')


def fresh_app() -> type[CronjobApp]:
    """A new app class: Morepath configuration belongs to a class."""

    class App(CronjobApp):
        pass

    @App.path(path='')
    class Root:
        pass

    @App.view(model=Root)
    def index(self: Root, request: morepath.Request[Any]) -> str:
        return 'the site'

    App.Root = Root  # type: ignore[attr-defined]
    return App


def serve(app: morepath.App, **options: Any) -> CronApp:
    return cron_app(app, secret='s', base_url=BASE, enabled=False, **options)


def run(cron: CronApp, name: str) -> tuple[int, str]:
    """Call the job's URL: the status and the body's line."""
    path = cron.url_for(name).removeprefix(BASE)
    response: Response = Request.blank(
        path, method='POST', base_url=BASE).get_response(cron)
    return response.status_int, response.text.strip()


def test_directive_registers_jobs_at_commit() -> None:
    """@App.cronjob registers a job named module.qualname, schedule kept."""
    App = fresh_app()

    @App.cronjob(hour=8, minute=30, timezone='Europe/Zurich')
    def morning_report(request: morepath.Request[Any]) -> None:
        pass

    @App.cronjob(every=timedelta(minutes=5), name='poll', overlap='allow')
    def poll(request: morepath.Request[Any]) -> None:
        pass

    cron = serve(App())
    name = (f'{__name__}.test_directive_registers_jobs_at_commit.<locals>.'
            'morning_report')
    assert set(cron.jobs) == {name, 'poll'}
    assert cron.jobs[name].schedule == Schedule(
        hour=8, minute=30, timezone='Europe/Zurich')
    assert cron.jobs['poll'].overlap == 'allow'


def test_directive_keywords_are_cronapp_cronjobs() -> None:
    """The directive takes exactly the keywords of CronApp.cronjob."""
    directive = list(inspect.signature(
        CronjobAction.__init__).parameters.values())[1:]
    method = list(inspect.signature(CronApp.cronjob).parameters.values())[1:]
    assert [(p.name, p.kind, p.default) for p in directive] == [
        (p.name, p.kind, p.default) for p in method]


@pytest.mark.parametrize('kwargs', [
    {'hour': 25}, {'expr': '* * 30 2 *'}, {'minute': '*/0'},
    {'hour': 1, 'timezone': 'Mars/Olympus'},
], ids=['hour-25', 'never-fires', 'step-0', 'unknown-zone'])
def test_bad_schedule_fails_the_commit(kwargs: dict[str, Any]) -> None:
    """A bad schedule raises InvalidSchedule when the app is committed."""
    App = fresh_app()
    App.cronjob(**kwargs)(lambda request: None)
    with pytest.raises(InvalidSchedule):
        App.commit()


def test_bad_option_fails_the_commit() -> None:
    """A bad job option raises ValueError at commit, naming the job."""
    App = fresh_app()

    @App.cronjob(hour=1, overlap='sometimes')
    def tidy(request: morepath.Request[Any]) -> None:
        pass

    with pytest.raises(ValueError, match='tidy.*overlap'):
        App.commit()


def test_job_function_without_the_request_fails_the_commit() -> None:
    """A job function that cannot take the request raises TypeError at
    commit, naming the job and the function."""
    App = fresh_app()

    @App.cronjob(hour=3)
    def nightly() -> None:
        pass

    with pytest.raises(TypeError, match=r'nightly.*nightly\(\).*request'):
        App.commit()


def test_job_function_taking_the_request_serves() -> None:
    """A job taking the morepath request registers and runs."""
    App = fresh_app()

    @App.cronjob(hour=3, name='nightly')
    def nightly(request: morepath.Request[Any], extra: int = 1) -> str:
        return 'ran'

    assert run(serve(App()), 'nightly') == (200, 'ran')


def test_unknown_keyword_is_reported_with_its_line() -> None:
    """A keyword cronjob does not take fails the commit with its place."""
    App = fresh_app()
    App.cronjob(hour=1, every_day=True)(  # type: ignore[call-arg]
        lambda request: None)
    with pytest.raises(dectate.DirectiveReportError, match='every_day'):
        App.commit()


def test_two_jobs_of_one_name_conflict() -> None:
    """Two jobs of one explicit name in one app are a dectate conflict."""
    App = fresh_app()
    App.cronjob(hour=1, name='tidy')(lambda request: None)
    App.cronjob(hour=2, name='tidy')(lambda request: None)
    with pytest.raises(dectate.ConflictError):
        App.commit()


def test_explicit_name_taken_by_a_default_name_fails_the_commit() -> None:
    """A name= equal to another job's default name fails the commit."""
    App = fresh_app()

    @App.cronjob(hour=1)
    def tidy(request: morepath.Request[Any]) -> None:
        pass

    App.cronjob(hour=2, name=f'{tidy.__module__}.{tidy.__qualname__}')(
        lambda request: None)
    with pytest.raises(dectate.DirectiveReportError, match='tidy'):
        App.commit()


def test_chained_jobs_keep_their_names() -> None:
    """then= takes one name or several, as with CronApp.cronjob."""
    App = fresh_app()
    App.cronjob(hour=1, name='first', then='second')(lambda request: None)
    App.cronjob(name='second', then=['first'])(lambda request: None)
    cron = serve(App())
    assert cron.jobs['first'].then == ('second',)
    assert cron.jobs['second'].then == ('first',)


def test_subclass_inherits_jobs_and_overrides_by_name(
        tmp_path: Path) -> None:
    """A subclass app has its base's jobs; its job of one name wins."""
    Base = fresh_app()
    Base.cronjob(hour=1, name='tidy')(lambda request: 'base tidy')
    Base.cronjob(hour=2, name='report')(lambda request: 'base report')

    class Sub(Base):  # type: ignore[misc, valid-type]
        pass

    Sub.cronjob(hour=3, name='tidy')(lambda request: 'sub tidy')
    base, sub = (serve(Base(), lock_dir=str(tmp_path)),
                 serve(Sub(), lock_dir=str(tmp_path)))
    assert set(base.jobs) == set(sub.jobs) == {'tidy', 'report'}
    assert run(base, 'tidy') == (200, 'base tidy')
    assert run(sub, 'tidy') == (200, 'sub tidy')
    assert run(sub, 'report') == (200, 'base report')
    assert sub.jobs['tidy'].schedule == Schedule(hour=3)


def test_job_gets_a_morepath_request_bound_to_the_app(
        tmp_path: Path) -> None:
    """The job gets a morepath.Request: request.app, request.link work."""
    App = fresh_app()
    seen: list[morepath.Request[Any]] = []

    @App.cronjob(hour=1, name='link')
    def link(request: morepath.Request[Any]) -> str:
        seen.append(request)
        return str(request.link(App.Root()))  # type: ignore[attr-defined]

    app = App()
    cron = serve(app, lock_dir=str(tmp_path))
    assert run(cron, 'link') == (200, f'{BASE}/')
    assert isinstance(seen[0], morepath.Request)
    assert seen[0].app is app
    # the site itself is untouched
    assert Request.blank('/').get_response(cron).text == 'the site'


def tween(log: list[str], answer: Callable[[], Response] | None = None
          ) -> Callable[[morepath.App, Any], Any]:
    def factory(app: morepath.App, handler: Any) -> Any:
        def around(request: morepath.Request[Any]) -> Response:
            log.append('before')
            if answer is not None:
                return answer()
            try:
                response: Response = handler(request)
                return response
            finally:
                log.append('after')
        return around
    return factory


def test_job_runs_inside_the_apps_tweens(tmp_path: Path) -> None:
    """A tween (more.transaction's kind) wraps the job as it wraps views."""
    App = fresh_app()
    log: list[str] = []
    App.tween_factory()(tween(log))

    @App.cronjob(hour=1, name='work')
    def work(request: morepath.Request[Any]) -> str:
        log.append('job')
        return 'done'

    cron = serve(App(), lock_dir=str(tmp_path))
    assert run(cron, 'work') == (200, 'done')
    assert log == ['before', 'job', 'after']


def test_failing_job_fails_the_run_despite_an_exception_view(
        tmp_path: Path) -> None:
    """An exception view does not hide a job's error: 500, reported."""
    App = fresh_app()

    @App.view(model=RuntimeError)
    def oops(self: RuntimeError, request: morepath.Request[Any]) -> str:
        return 'handled'

    @App.cronjob(hour=1, name='broken')
    def broken(request: morepath.Request[Any]) -> None:
        raise RuntimeError('the disk is full')

    failures = Failures()
    cron = serve(App(), reporter=failures, lock_dir=str(tmp_path))
    assert run(cron, 'broken')[0] == 500
    assert failures.messages == ['broken: RuntimeError raised']


def test_tween_answering_first_fails_the_run(tmp_path: Path) -> None:
    """A tween that answers without calling the job fails the run."""
    App = fresh_app()
    log: list[str] = []
    App.tween_factory()(tween(log, answer=HTTPForbidden))
    ran: list[bool] = []
    App.cronjob(hour=1, name='guarded')(lambda request: ran.append(True))
    failures = Failures()
    cron = serve(App(), reporter=failures, lock_dir=str(tmp_path))
    assert run(cron, 'guarded')[0] == 500
    assert ran == [] and log == ['before']
    assert failures.messages == ['guarded: OnecronError raised']


def test_app_without_jobs_serves_the_site() -> None:
    """An app class with no cronjob still serves through cron_app."""
    cron = serve(fresh_app()())
    assert dict(cron.jobs) == {}
    assert Request.blank('/').get_response(cron).text == 'the site'
