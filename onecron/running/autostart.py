"""Starting the scheduler without a request, in the processes that serve.

``CronApp(autostart='auto')`` (the default) starts scheduling about a second
after the app is built, but only in a process that recognisably serves WSGI
requests (see :func:`serving_process`): a gunicorn, uWSGI or mod_wsgi
worker, ``waitress-serve``, or the serving child of Werkzeug's or Django's
dev reloader. A process that merely imports the app (a test suite, the
``onecron`` command, ``flask shell``, a Celery worker, a reloader's watcher)
starts nothing: it would call the job URLs of the configured base URL, which
may well be production's.

The start is deferred (:data:`DELAY`) so that a pre-fork master (gunicorn
``--preload``) forks first: a process that forked after arming never starts
(its children are re-armed by the fork hook instead), and neither does a
process whose pid changed. Every process may try; the host lock lets one
schedule and the others stand by.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from types import ModuleType

from onecron.schedule.clock import Clock, Waker, time_source

log = logging.getLogger(__name__)

#: seconds between building the app (or a fork) and the start
DELAY = 1.0

#: False: no CronApp autostarts in this process (the ``onecron`` command
#: turns it off before it imports an application); see :func:`disable`
allowed = True

# forks made by this process (os.fork and friends): a start armed before
# a fork does not fire in the parent
_forks = 0
# the pid whose fork hooks ran: another pid in uWSGI's post-fork hook means
# uWSGI forked without them (no --py-call-uwsgi-fork-hooks)
_pid = os.getpid()
_in_child: list[Callable[[], None]] = []
_hooked_uwsgi = False


def disable() -> None:
    """No CronApp of this process autostarts, even with autostart=True:
    for tools that import an application to look at it."""
    global allowed
    allowed = False


def serving_process() -> str | None:
    """The name of the WSGI server this process serves requests for, or
    None when it is not recognisably one of their serving processes.

    Detected: a gunicorn process (its master too: :class:`Deferred` never
    starts in a process that forked since, nor in a running
    :func:`gunicorn_master`), a uWSGI worker (not the master, mules or the
    spooler), mod_wsgi, ``waitress-serve`` (the console script or
    ``python -m waitress``, not merely an imported waitress) and the
    serving child of Werkzeug's reloader (``flask run --debug``) or of
    Django's (``manage.py runserver``).
    """
    uwsgi = _uwsgi()
    if uwsgi is not None:
        return 'uWSGI' if int(uwsgi.worker_id()) > 0 else None
    mod_wsgi = sys.modules.get('mod_wsgi')
    if mod_wsgi is not None and hasattr(mod_wsgi, 'process_group'):
        return 'mod_wsgi'
    if 'gunicorn.arbiter' in sys.modules and os.environ.get(
            'SERVER_SOFTWARE', '').startswith('gunicorn/'):
        return 'gunicorn'
    if 'waitress.runner' in sys.modules and _main_is(
            'waitress.__main__', 'waitress-serve'):
        return 'waitress-serve'
    if os.environ.get('WERKZEUG_RUN_MAIN') == 'true':
        return 'Werkzeug reloader'
    if (os.environ.get('RUN_MAIN') == 'true'
            and 'django.utils.autoreload' in sys.modules):
        return 'Django runserver'
    return None


def gunicorn_master() -> bool:
    """Whether this is gunicorn's master (the arbiter), which imports the
    app with ``--preload`` but serves nothing: it handles SIGTERM once it
    runs, and its workers, forked from it, start instead."""
    arbiter = sys.modules.get('gunicorn.arbiter')
    master = getattr(arbiter, 'Arbiter', None)
    handler = getattr(signal.getsignal(signal.SIGTERM), '__self__', None)
    return master is not None and isinstance(handler, master)


def _main_is(module: str, script: str) -> bool:
    """Whether the main program is ``python -m module`` or the console
    script ``script``."""
    main = sys.modules.get('__main__')
    spec = getattr(main, '__spec__', None)
    if spec is not None and spec.name == module:
        return True
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ''
    return argv0 in (script, f'{script}.exe', f'{script}-script.py')


def _uwsgi() -> ModuleType | None:
    """uWSGI's own module: importable only inside uWSGI."""
    module = sys.modules.get('uwsgi')
    if module is None:
        try:
            module = importlib.import_module('uwsgi')
        except ImportError:
            return None
    return module if hasattr(module, 'worker_id') else None


class Deferred:
    """One start of ``start`` (given the server's name), ``delay`` (by
    default :data:`DELAY`) seconds after :meth:`arm`, in this process, if
    it still applies then (``delay`` counted on ``clock``'s
    :func:`~onecron.schedule.clock.time_source`).

    ``mode`` is ``'auto'`` (only in a :func:`serving_process`) or True (in
    any process). :meth:`arm` again in a forked child; :meth:`disarm` for
    good. It fires at most once per process.
    """

    def __init__(self, mode: bool | str, start: Callable[[str], None], *,
                 delay: float | None = None,
                 clock: Clock | None = None) -> None:
        self.mode = mode
        self._start = start
        self.delay = DELAY if delay is None else delay
        self._clock = time_source(clock)
        self._timer: threading.Thread | None = None
        self._cancel: Waker | None = None
        self._armed_pid = 0
        self._armed_forks = -1
        self._fired_pid = 0
        self._disarmed = False

    def _server(self) -> str | None:
        """Where it may start now: the server's name, or None."""
        if not allowed or self._disarmed:
            return None
        server = serving_process()
        if server is None and self.mode is True:
            return 'custom server'
        return server

    @property
    def armed(self) -> bool:
        """Whether a start is pending in this process."""
        return (self._timer is not None and self._timer.is_alive()
                and self._armed_pid == os.getpid())

    def arm(self) -> bool:
        """Arm the start in this process, if it applies here and is not
        armed or done already; whether it is armed."""
        pid = os.getpid()
        if self._fired_pid == pid:
            return False  # done in this process
        if self.armed:
            return True
        _hook_uwsgi()
        if self._server() is None:
            return False
        self._armed_pid = pid
        self._armed_forks = _forks
        self._cancel = cancel = self._clock.event()
        timer = threading.Thread(target=self._wait, args=(cancel,),
                                 name='onecron-autostart', daemon=True)
        self._timer = timer
        timer.start()
        return True

    def disarm(self) -> None:
        """Never start (in this process and its future children)."""
        self._disarmed = True
        timer, self._timer = self._timer, None
        if (timer is not None and self._cancel is not None
                and self._armed_pid == os.getpid() and timer.is_alive()):
            self._cancel.set()

    def _wait(self, cancel: Waker) -> None:
        """The timer's thread: fire after the delay, unless cancelled."""
        if not cancel.wait(self.delay):
            self._fire()

    def _fire(self) -> None:
        pid = os.getpid()
        if pid != self._armed_pid or _forks != self._armed_forks:
            return  # forked since: the children start, not this process
        server = self._server()
        if server is None or self._fired_pid == pid or gunicorn_master():
            return
        self._fired_pid = pid
        try:
            self._start(server)
        except Exception:  # never a silently dead autostart
            log.exception('the scheduler did not autostart in %s pid %d',
                          server, pid)


def in_child(func: Callable[[], None], *, register: bool = True) -> None:
    """Call ``func`` in each forked child: from :func:`os.register_at_fork`
    (False: it is registered there already) and, when uWSGI forks its
    workers without Python's fork hooks, from its post-fork hook."""
    _in_child.append(func)
    if register:
        os.register_at_fork(after_in_child=func)


def _before_fork() -> None:
    global _forks
    _forks += 1


def _after_fork_in_child() -> None:
    global _pid
    _pid = os.getpid()


def _uwsgi_post_fork() -> None:
    """In a uWSGI worker: run the fork hooks if Python's did not run."""
    global _pid
    if _pid == os.getpid():
        return
    _pid = os.getpid()
    for func in _in_child:
        try:
            func()
        except Exception:
            log.exception('a fork hook failed in uWSGI worker pid %d', _pid)


def _hook_uwsgi() -> None:
    """Inside uWSGI, chain :func:`_uwsgi_post_fork` to its post-fork hook
    (through uwsgidecorators' chain when that is loaded), once."""
    global _hooked_uwsgi
    uwsgi = _uwsgi()
    if uwsgi is None or _hooked_uwsgi:
        return
    _hooked_uwsgi = True
    decorators = sys.modules.get('uwsgidecorators')
    chain = getattr(decorators, 'postfork_chain', None)
    if isinstance(chain, list):
        chain.append(_uwsgi_post_fork)
        return
    previous = getattr(uwsgi, 'post_fork_hook', None)

    def hook() -> None:
        _uwsgi_post_fork()
        if callable(previous):
            previous()

    setattr(uwsgi, 'post_fork_hook', hook)  # noqa: B010 (a module, untyped)


os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
