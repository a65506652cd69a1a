"""onecron.flask: Cron, a Flask extension, through Flask's test client,
its CLI runner and a real server."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask, current_app, g, redirect, request
from flask_sqlalchemy import SQLAlchemy

from onecron import (
    CronApp,
    DuplicateJob,
    InvalidSchedule,
    OnecronError,
    Outcome,
    Trigger,
)
from onecron.flask import Cron
from onecron.stores.sqlite import SqliteStore

from .conftest import Failures, LiveServer, wait_for

SECRET = 'a long random secret for the flask tests'
OTHER_SECRET = 'another long random secret, of the other app'


@pytest.fixture
def make_app(tmp_path: Path,
             apps: list[CronApp]) -> Callable[..., Flask]:
    """Flask apps served by a Cron, their store and locks in tmp_path;
    their CronApps stopped after the test."""
    made: list[Flask] = []

    def make(cron: Cron, name: str = 'app', **config: Any) -> Flask:
        app = Flask(__name__)
        app.config.update(
            ONECRON_SECRET=SECRET,
            ONECRON_STORE=str(tmp_path / f'{name}-runs.sqlite'),
            ONECRON_LOCK_DIR=str(tmp_path / f'{name}-locks'),
            ONECRON_ENABLED=False)  # the job URLs work; no scheduler
        app.config.update(config)
        cron.init_app(app)
        apps.append(cron.cronapp(app))
        made.append(app)
        return app

    return make


def job_url(cron: Cron, app: Flask, name: str) -> str:
    return cron.cronapp(app).url_for(name, 'http://localhost')


def test_signed_url_runs_the_job_inside_a_flask_request(
        make_app: Callable[..., Flask]) -> None:
    """The job URL runs the job with no arguments in a Flask request:
    request, current_app and g work, the hooks run around it."""
    cron = Cron()
    app = make_app(cron)
    events: list[str] = []

    @app.before_request
    def before() -> None:
        events.append('before_request')
        g.user = 'cron'

    @app.teardown_request
    def teardown_request(exc: BaseException | None) -> None:
        events.append(f'teardown_request {exc!r}')

    @app.teardown_appcontext
    def teardown_appcontext(exc: BaseException | None) -> None:
        events.append(f'teardown_appcontext {exc!r}')

    @cron.cronjob(name='hello')
    def hello() -> str:
        events.append(f'job {request.method} {current_app.name} {g.user}')
        return 'hello from the job'

    response = app.test_client().post(job_url(cron, app, 'hello'))
    assert (response.status_code, response.text) == (
        200, 'hello from the job\n')
    assert events == ['before_request', f'job POST {app.name} cron',
                      'teardown_request None', 'teardown_appcontext None']


def test_job_request_holds_no_token(
        make_app: Callable[..., Flask],
        caplog: pytest.LogCaptureFixture) -> None:
    """A hook or job that logs Flask's request.url logs no token: the
    job's Flask request shows a placeholder in its place."""
    cron = Cron()
    app = make_app(cron)
    seen: list[str] = []

    @app.before_request
    def log_every_request() -> None:
        app.logger.warning('request to %s', request.url)

    @cron.cronjob(name='hello')
    def hello() -> None:
        seen.append(request.url)

    url = job_url(cron, app, 'hello')
    token = url.rsplit('/', 1)[1]
    with caplog.at_level(logging.INFO):
        assert app.test_client().post(url).status_code == 200
    assert seen == ['http://localhost/cronjobs/[token]']
    assert 'request to http://localhost/cronjobs/[token]' in caplog.text
    assert token not in caplog.text


def test_job_gets_an_app_context_of_its_own(
        make_app: Callable[..., Flask]) -> None:
    """Inside another context of the app (a `flask` command pushes one),
    a job still gets its own g, torn down when it ends."""
    cron = Cron()
    app = make_app(cron)
    events: list[str] = []

    @app.teardown_appcontext
    def teardown(exc: BaseException | None) -> None:
        events.append('teardown_appcontext')

    @cron.cronjob(name='hello')
    def hello() -> None:
        events.append(f'job sees outer g: {"outer" in g}')

    with app.app_context():
        g.outer = True
        assert app.test_client().post(
            job_url(cron, app, 'hello')).status_code == 200
        assert events == ['job sees outer g: False', 'teardown_appcontext']
    assert events[-1] == 'teardown_appcontext'


def test_flask_sqlalchemy_session_is_removed_after_the_job(
        make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """A job's Flask-SQLAlchemy session commits its row and is removed
    after the job, as after a view."""
    cron = Cron()
    db = SQLAlchemy()

    class Note(db.Model):  # type: ignore[name-defined,misc]
        id = sa.Column(sa.Integer, primary_key=True)
        text = sa.Column(sa.String)

    app = make_app(cron, SQLALCHEMY_DATABASE_URI=(
        f'sqlite:///{tmp_path / "app.sqlite"}'))
    seen: dict[str, bool] = {}

    # teardown functions run last registered first: this one after
    # Flask-SQLAlchemy's, which removes the session
    @app.teardown_appcontext
    def observe(exc: BaseException | None) -> None:
        seen['session after teardown'] = db.session.registry.has()

    db.init_app(app)
    with app.app_context():
        db.create_all()

    @cron.cronjob(name='write')
    def write() -> None:
        db.session.add(Note(text='written by the job'))
        db.session.commit()
        seen['session in the job'] = db.session.registry.has()

    assert app.test_client().post(job_url(cron, app, 'write')).status_code \
        == 200
    assert seen == {'session in the job': True,
                    'session after teardown': False}
    with app.app_context():
        assert db.session.scalars(sa.select(Note.text)).all() == [
            'written by the job']


def test_failing_job_tears_down_and_reports_the_failure(
        make_app: Callable[..., Flask]) -> None:
    """A job that raises: teardown gets the exception, the call 500, the
    failure is reported and stored."""
    cron = Cron()
    failures = Failures()
    app = make_app(cron, ONECRON_REPORTER=failures)
    torn_down: list[BaseException | None] = []

    @app.teardown_appcontext
    def teardown(exc: BaseException | None) -> None:
        torn_down.append(exc)

    @cron.cronjob(name='broken')
    def broken() -> None:
        raise RuntimeError('the job broke')

    response = app.test_client().post(job_url(cron, app, 'broken'))
    assert response.status_code == 500
    [exc] = torn_down
    assert isinstance(exc, RuntimeError) and str(exc) == 'the job broke'
    assert failures.messages == ['RuntimeError raised']
    store = cron.cronapp(app).store
    assert store is not None
    [run] = store.runs('default', 'broken')
    assert run.outcome is Outcome.FAILED
    assert 'RuntimeError: the job broke' in (run.error or '')


def test_before_request_answering_keeps_the_job_from_running(
        make_app: Callable[..., Flask]) -> None:
    """A before_request hook that answers (a login redirect): the job does
    not run and the run fails, saying why."""
    cron = Cron()
    failures = Failures()
    app = make_app(cron, ONECRON_REPORTER=failures)
    ran: list[str] = []

    @app.before_request
    def login_required() -> Any:
        return redirect('/login')

    @cron.cronjob(name='guarded')
    def guarded() -> None:
        ran.append('guarded')

    response = app.test_client().post(job_url(cron, app, 'guarded'))
    assert response.status_code == 500
    assert ran == []
    assert failures.messages == ['OnecronError raised']
    store = cron.cronapp(app).store
    assert store is not None
    [run] = store.runs('default', 'guarded')
    assert ("job 'guarded' did not run: a before_request hook answered "
            "302 FOUND before it") in (run.error or '')


def test_init_app_without_secret_names_it() -> None:
    """init_app without ONECRON_SECRET raises naming it; the app is left
    as it was."""
    app = Flask(__name__)
    served = app.wsgi_app
    with pytest.raises(OnecronError, match='ONECRON_SECRET is not set'):
        Cron(app)
    assert app.wsgi_app == served
    assert 'onecron' not in app.extensions


def test_misspelled_key_names_it_and_the_right_one() -> None:
    """An ONECRON_ key that is no setting raises naming it and the
    closest one, not silently ignored."""
    app = Flask(__name__)
    app.config.update(ONECRON_SECRET=SECRET,
                      ONECRON_BASEURL='https://example.org')
    with pytest.raises(OnecronError, match=(
            r"app.config\['ONECRON_BASEURL'\] is no onecron setting: did "
            r'you mean ONECRON_BASE_URL\?')):
        Cron().init_app(app)


def test_unknown_key_without_a_close_one_lists_the_settings() -> None:
    """An ONECRON_ key like no setting raises listing the settings; the
    app is left as it was."""
    app = Flask(__name__)
    served = app.wsgi_app
    app.config.update(ONECRON_SECRET=SECRET, ONECRON_XYZZY=1)
    with pytest.raises(OnecronError) as raised:
        Cron(app)
    assert str(raised.value).startswith(
        "app.config['ONECRON_XYZZY'] is no onecron setting: the settings "
        'are ONECRON_ALLOWED_HOSTS, ONECRON_APPLICATION_ID, ')
    assert app.wsgi_app == served and 'onecron' not in app.extensions


def test_config_keys_set_the_cronapp_keywords(
        make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """ONECRON_<KEYWORD> sets CronApp's keyword."""
    app = make_app(Cron(), ONECRON_PREFIX='/jobs',
                   ONECRON_APPLICATION_ID='flask-test',
                   ONECRON_BASE_URL='https://example.org/')
    cronapp = app.extensions['onecron']
    assert (cronapp.prefix, cronapp.application_id, cronapp.base_url,
            cronapp.lock_dir) == ('/jobs', 'flask-test',
                                  'https://example.org',
                                  str(tmp_path / 'app-locks'))
    assert app.wsgi_app is cronapp


def test_init_app_twice_refused(make_app: Callable[..., Flask]) -> None:
    """A second init_app on one app raises instead of wrapping twice."""
    cron = Cron()
    app = make_app(cron)
    with pytest.raises(OnecronError, match='has onecron already'):
        cron.init_app(app)
    with pytest.raises(OnecronError, match='has onecron already'):
        Cron().init_app(app)


def test_app_factory_two_apps_from_one_cron(
        make_app: Callable[..., Flask]) -> None:
    """One Cron serves two apps: jobs registered before and after
    init_app run in each, under its own app; one's URL is 404 on the
    other."""
    cron = Cron()

    @cron.cronjob(name='before')
    def before() -> str:
        return f'before in {current_app.config["WHO"]}'

    first = make_app(cron, 'first', WHO='first')
    second = make_app(cron, 'second', WHO='second',
                      ONECRON_SECRET=OTHER_SECRET)

    @cron.cronjob(name='after')
    def after() -> str:
        return f'after in {current_app.config["WHO"]}'

    for app in (first, second):
        assert sorted(cron.cronapp(app).jobs) == ['after', 'before']
        who = app.config['WHO']
        for name in ('before', 'after'):
            response = app.test_client().post(job_url(cron, app, name))
            assert response.text == f'{name} in {who}\n'
    response = second.test_client().post(job_url(cron, first, 'before'))
    assert response.status_code == 404
    with first.app_context():
        assert cron.cronapp() is first.extensions['onecron']
    with pytest.raises(OnecronError, match='call cron.init_app'):
        cron.cronapp(Flask('elsewhere'))


def test_job_names_as_the_plain_cronapp_names_them(
        make_app: Callable[..., Flask]) -> None:
    """A job is named module.qualname, or name=; one name twice raises."""
    cron = Cron()

    @cron.cronjob(hour=3)
    def purge() -> None:
        pass

    app = make_app(cron)
    assert list(cron.cronapp(app).jobs) == [
        f'{__name__}.test_job_names_as_the_plain_cronapp_names_them.'
        f'<locals>.purge']
    with pytest.raises(DuplicateJob):
        cron.cronjob(hour=4)(purge)


def test_cronjob_checks_at_import() -> None:
    """A bad schedule or option, or a job taking the request, raises at
    registration, before any app."""
    cron = Cron()
    with pytest.raises(InvalidSchedule):
        cron.cronjob(hour=25)
    with pytest.raises(ValueError, match='overlap'):
        cron.cronjob(hour=3, overlap='sometimes')(lambda: None)
    with pytest.raises(TypeError, match='cannot be called with no '
                       'arguments'):
        @cron.cronjob(hour=3)
        def old_style(request: Any) -> None:
            pass
    with pytest.raises(TypeError, match='not bare'):
        cron.cronjob(lambda: None)  # type: ignore[arg-type]


def test_cronjob_takes_the_keywords_of_cronapp() -> None:
    """Cron.cronjob takes CronApp.cronjob's keywords, same defaults."""
    ours = inspect.signature(Cron.cronjob).parameters
    theirs = inspect.signature(CronApp.cronjob).parameters
    assert [(p.name, p.kind, p.default) for p in ours.values()] == [
        (p.name, p.kind, p.default) for p in theirs.values()]


def test_status_page_at_the_prefix(
        make_app: Callable[..., Flask]) -> None:
    """The status page answers at the prefix, listing the jobs; Flask's
    routes answer as before."""
    cron = Cron()
    app = make_app(cron)

    @app.route('/')
    def index() -> str:
        return 'index'

    @cron.cronjob(hour=3, name='nightly')
    def nightly() -> None:
        pass

    client = app.test_client()
    page = client.get('/cronjobs/')
    assert page.status_code == 200
    assert 'nightly' in page.text
    assert client.get('/').text == 'index'
    # the status page's rule holds: loopback only by default
    far = client.get('/cronjobs/', environ_base={'REMOTE_ADDR': '192.0.2.7'})
    assert far.status_code == 403


def test_flask_onecron_commands(make_app: Callable[..., Flask],
                                tmp_path: Path) -> None:
    """flask onecron list/run/history/status/export run the onecron
    commands for the app, with their errors and exit codes."""
    cron = Cron()
    app = make_app(cron)

    @cron.cronjob(hour=3, name='nightly')
    def nightly() -> str:
        return f'ran in {current_app.name}'

    runner = app.test_cli_runner()

    def flask_onecron(*arguments: str) -> Any:
        return runner.invoke(args=['onecron', *arguments])

    listed = flask_onecron('list')
    assert listed.exit_code == 0, listed.output
    assert 'nightly' in listed.stdout
    ran = flask_onecron('run', 'nightly')
    assert (ran.exit_code, ran.stdout) == (0, f'ran in {app.name}\n')
    history = flask_onecron('history')
    assert history.exit_code == 0 and 'nightly' in history.stdout
    status = flask_onecron('status', '--json')
    assert status.exit_code == 0 and '"nightly"' in status.stdout
    exported = flask_onecron('export', 'crontab', '--base-url',
                             'https://example.org', '--output',
                             str(tmp_path / 'export'))
    assert exported.exit_code == 0, exported.output
    assert 'https://example.org/cronjobs/' in ''.join(
        path.read_text() for path in (tmp_path / 'export').rglob('*')
        if path.is_file())
    helped = flask_onecron('--help')
    assert helped.exit_code == 0
    assert helped.stdout.startswith('usage: flask onecron')
    unknown = flask_onecron('run', 'nope')
    assert unknown.exit_code == 1
    assert unknown.stderr.startswith('onecron: error: ')
    assert 'nope' in unknown.stderr
    malformed = flask_onecron('frobnicate')
    assert malformed.exit_code == 2
    assert '(see: flask onecron --help)' in malformed.stderr


def test_scheduler_fires_the_job_on_a_real_server(
        make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """On waitress, the scheduler calls the job URL and the job runs in
    Flask's context: its hooks, g, current_app."""
    cron = Cron()
    served: list[Flask] = []
    server = LiveServer(lambda environ, start_response: served[0](
        environ, start_response))
    try:
        app = make_app(cron, ONECRON_ENABLED=True,
                       ONECRON_BASE_URL=server.url,
                       ONECRON_APPLICATION_ID='flask-live')
        served.append(app)

        @app.before_request
        def before() -> None:
            g.greeting = 'hello'

        @cron.cronjob('* * * * * *', jitter=False, name='tick')
        def tick() -> str:
            return f'{g.greeting} from {current_app.name} {request.method}'

        cron.cronapp(app).start()
        store = SqliteStore(tmp_path / 'app-runs.sqlite')
        try:
            [run, *_] = wait_for(lambda: [
                run for run in store.runs('flask-live', 'tick')
                if run.outcome is Outcome.OK], timeout=15)
        finally:
            store.close()
        cron.cronapp(app).stop()
    finally:
        server.close()
    assert run.trigger is Trigger.SCHEDULER
    assert run.output == f'hello from {app.name} POST'
