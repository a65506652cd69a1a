"""Finding what a command names: the :class:`~onecron.CronApp` that
``APP`` (``module:attribute``) names, the ``CronApp`` objects a module
holds when it names something else, a job by name (with suggestions),
the application id and store to read.
"""

from __future__ import annotations

import difflib
import importlib
import os
import sys
from collections.abc import Mapping
from types import GetSetDescriptorType, ModuleType

from onecron.app import CronApp
from onecron.cli.errors import CommandError, UsageError, _describe
from onecron.running import autostart
from onecron.stores.base import Store


def load(spec: str) -> CronApp:
    """The :class:`~onecron.CronApp` that ``module:attribute`` names.

    The current directory goes first on ``sys.path``, as gunicorn puts it;
    the attribute may be dotted (``module:holder.app``).

    :raises CommandError: naming what is missing or what went wrong
    """
    module_name, colon, attribute = spec.partition(':')
    if not colon or not module_name or not attribute:
        raise UsageError(f'APP must be module:attribute, such as '
                         f'example_app.app:app, got {spec!r}')
    # looking at an app must not schedule its jobs, whatever it says
    autostart.disable()
    here = os.getcwd()
    if here not in sys.path and '' not in sys.path:
        sys.path.insert(0, here)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ''
        if module_name == missing or module_name.startswith(missing + '.'):
            raise CommandError(
                f'no module named {missing!r} (APP {spec!r}): run onecron '
                f'where the module is, or put it on PYTHONPATH') from exc
        raise CommandError(f'importing {module_name!r} failed: '
                           f'{_describe(exc)}') from exc
    except (Exception, SystemExit) as exc:
        raise CommandError(f'importing {module_name!r} failed: '
                           f'{_describe(exc)}') from exc
    found: object = module
    for part in attribute.split('.'):
        try:
            found = getattr(found, part)
        except AttributeError:
            places = _cron_apps(module, module_name, [])
            raise CommandError(f'module {module_name!r} has no attribute '
                               f'{attribute!r}'
                               + (_naming(places) if places else '')
                               ) from None
    if not isinstance(found, CronApp):
        places = _cron_apps(module, module_name, [(attribute, found)])
        raise CommandError(
            f'{spec} is a {type(found).__name__}, not a onecron.CronApp'
            + (_naming(places) if places else
               f'; module {module_name!r} holds none: name the CronApp '
               f'that wraps your WSGI application'))
    return found


#: where WSGI wrappers keep the application they wrap: Flask's
#: ``app.wsgi_app = CronApp(app.wsgi_app)``, ``.app`` of werkzeug's and
#: Sentry's middleware, ``.application`` of WhiteNoise
_WRAPPED = ('wsgi_app', 'app', 'application', 'wrapped')


def _cron_apps(module: ModuleType, module_name: str,
               start: list[tuple[str, object]]) -> list[list[str]]:
    """Each :class:`~onecron.CronApp` ``module`` holds, as the
    ``module:attribute`` names that reach it.

    ``start`` and the module's globals come first, then what they wrap,
    two levels down (:data:`_WRAPPED`). Only instance dictionaries are
    read, so no property, proxy or ``__getattr__`` of the application
    runs.
    """
    places: dict[int, list[str]] = {}
    named: set[str] = set()
    seen: set[int] = set()
    level = start + [(name, value) for name, value in vars(module).items()
                     if not issubclass(type(value), ModuleType)]
    for _ in range(3):
        below: list[tuple[str, object]] = []
        for path, value in level:
            if path in named:
                continue
            named.add(path)
            if issubclass(type(value), CronApp):
                places.setdefault(id(value), []).append(
                    f'{module_name}:{path}')
                continue
            if id(value) in seen:
                continue
            seen.add(id(value))
            attributes = _instance_dict(value)
            below += [(f'{path}.{key}', attributes[key])
                      for key in _WRAPPED if key in attributes]
        level = below
    return list(places.values())


def _instance_dict(value: object) -> Mapping[str, object]:
    """``value.__dict__`` if it is the plain one Python keeps, else
    nothing: a proxy's ``__dict__`` (werkzeug's ``current_app``) would run
    its code, and fail outside a request."""
    for klass in type(value).__mro__:
        descriptor = vars(klass).get('__dict__')
        if descriptor is not None:
            if isinstance(descriptor, GetSetDescriptorType):
                attributes = descriptor.__get__(value, type(value))
                if isinstance(attributes, Mapping):
                    return attributes
            break
    return {}


def _naming(places: list[list[str]]) -> str:
    """``; the CronApp is m:cron (also m:app.wsgi_app)``."""
    names = [paths[0] + (f' (also {" or ".join(paths[1:])})'
                         if len(paths) > 1 else '') for paths in places]
    if len(names) == 1:
        return f'; the CronApp is {names[0]}'
    return f'; the CronApps are {", ".join(names[:-1])} and {names[-1]}'


def _job_name(app: CronApp, spec: str, name: str) -> str:
    """``name`` if ``app`` has such a job; else an error with suggestions."""
    if name in app.jobs:
        return name
    names = sorted(app.jobs)
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    # the function's name alone, without its module
    tails = {job.rpartition('.')[2]: job for job in names}
    close += [tails[tail] for tail in difflib.get_close_matches(
        name.rpartition('.')[2], tails, n=3, cutoff=0.8)
        if tails[tail] not in close]
    hint = (f'; did you mean {" or ".join(map(repr, close[:3]))}?' if close
            else f'; {spec} has {_count(len(names), "job")}'
            + (f': {", ".join(names[:5])}' + (', ...' if len(names) > 5
                                              else '') if names else ''))
    raise CommandError(f'no job named {name!r}{hint}')


def _count(n: int, noun: str) -> str:
    return f'{n} {noun}{"s" * (n != 1)}'


def _default_id(app: CronApp) -> str:
    return app.application_id if isinstance(app.application_id,
                                            str) else 'default'


def _store(app: CronApp, spec: str) -> Store:
    if app.store is None:
        raise CommandError(f'{spec} keeps no history: configure '
                           f'CronApp(store=...)')
    return app.store
