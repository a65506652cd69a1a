"""The Django application: builds the CronApp from ``settings.ONECRON``.

Every keyword of :class:`~onecron.CronApp` is a key of ``ONECRON``,
upper-cased (``'SECRET'``, ``'BASE_URL'``, ``'STORE'``, ``'PREFIX'``, ...);
an unknown key is an error naming the closest one. Without
``ONECRON['ALLOWED_HOSTS']`` (and without a base URL) the scheduler may
learn its base URL from a request for one of Django's ``ALLOWED_HOSTS``
(never ``'*'``) on the scheme's default port.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from django.apps import AppConfig
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import request_started
from django.http.request import validate_host
from django.urls import NoReverseMatch, get_script_prefix, reverse
from django.utils.module_loading import autodiscover_modules

from onecron import CronApp
from onecron.django import _install, get_cronapp
from onecron.django.cron import DjangoCronApp

#: ``ONECRON`` key -> CronApp keyword, from CronApp's own signature
KEYS = {name.upper(): name for name, parameter
        in inspect.signature(CronApp).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY}


class OnecronConfig(AppConfig):  # type: ignore[misc]
    """onecron's Django application (label ``onecron``)."""

    name = 'onecron.django'
    label = 'onecron'
    verbose_name = 'onecron'

    def ready(self) -> None:
        config = getattr(settings, 'ONECRON', None)
        found = options(config)
        # not in ONECRON: taken from Django's ALLOWED_HOSTS
        derived = isinstance(config, Mapping) and (
            'ALLOWED_HOSTS' not in config and 'allowed_hosts' in found)
        try:
            cron = DjangoCronApp(**found)
        except (TypeError, ValueError) as exc:
            # CronApp names the keyword: ONECRON has it upper-cased
            hint = ''
            if derived and 'allowed_hosts' in str(exc):
                hint = (" (taken from Django's ALLOWED_HOSTS: set ONECRON["
                        "'ALLOWED_HOSTS'] to the hosts whose requests may "
                        "give the scheduler its base URL)")
            raise ImproperlyConfigured(
                f'settings.ONECRON: {exc}{hint}') from exc
        _install(cron)
        request_started.connect(_notice, dispatch_uid='onecron.django')
        checks.register(check_urls, checks.Tags.urls)
        checks.register(check_base_url)
        autodiscover_modules('cronjobs')


def options(config: object) -> dict[str, Any]:
    """The CronApp keywords of the setting ``ONECRON``.

    :raises ImproperlyConfigured: naming the key that is wrong
    """
    if not isinstance(config, Mapping):
        raise ImproperlyConfigured(
            "settings.ONECRON must be a dict such as {'SECRET': ..., "
            "'BASE_URL': ...}, got "
            + ('nothing' if config is None else type(config).__name__))
    found: dict[str, Any] = {}
    for key, value in config.items():
        if key not in KEYS:
            close = difflib.get_close_matches(str(key), KEYS, 1)
            raise ImproperlyConfigured(
                f'ONECRON[{key!r}] is no onecron setting'
                + (f': did you mean ONECRON[{close[0]!r}]?' if close else
                   f'; the settings are {", ".join(sorted(KEYS))}'))
        found[KEYS[key]] = value
    secret = found.get('secret')
    if not secret:
        raise ImproperlyConfigured(
            "ONECRON['SECRET'] is missing: set it to a long random string "
            'of its own, not SECRET_KEY: it signs the job URLs, and whoever '
            'knows it runs every job')
    secret_key = getattr(settings, 'SECRET_KEY', None)
    if secret_key and secret_key in (
            [secret] if isinstance(secret, str) else list(secret)):
        raise ImproperlyConfigured(
            "ONECRON['SECRET'] is SECRET_KEY: give onecron a secret of its "
            'own, so that rotating one does not rotate the other and '
            'whoever learns one cannot run the jobs or forge sessions too')
    if 'allowed_hosts' not in found and 'base_url' not in found:
        # on their scheme's default port, as onecron reads a bare host
        found['allowed_hosts'] = [host for host in settings.ALLOWED_HOSTS
                                  if host != '*']
    return found


def _notice(sender: object, environ: Any = None, **kwargs: Any) -> None:
    """``request_started``: a request may start the scheduler, as every
    request to a CronApp does."""
    cron = get_cronapp()
    if environ is not None and isinstance(cron, DjangoCronApp):
        cron.notice(environ)


def check_urls(app_configs: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    """The job URLs' view must be included at the CronApp's prefix, or
    the scheduler's calls would miss it."""
    prefix = get_cronapp().prefix
    hint = (f"urlpatterns += [path({prefix.lstrip('/') + '/'!r}, "
            f"include('onecron.django.urls'))]")
    try:
        where = reverse('onecron:status')
    except NoReverseMatch:
        return [checks.Error(
            'onecron.django.urls is not in the URLconf: the job URLs would '
            'answer 404', hint=hint, id='onecron.E001')]
    script = get_script_prefix()
    if where.startswith(script):
        where = '/' + where[len(script):]
    if where.rstrip('/') != prefix:
        return [checks.Error(
            f"onecron.django.urls is included at {where!r}, but "
            f"ONECRON['PREFIX'] is {prefix!r}: the job URLs the scheduler "
            f"calls would not reach it",
            hint=f"{hint}, or set ONECRON['PREFIX'] = "
                 f"{where.rstrip('/')!r}", id='onecron.E002')]
    return []


def check_base_url(app_configs: Any,
                   **kwargs: Any) -> list[checks.CheckMessage]:
    """The scheduler calls the base URL: Django must allow its host, or
    answers each call 400."""
    base_url = get_cronapp().base_url
    if not isinstance(base_url, str):
        return []  # none, or one per application id
    host = urlsplit(base_url).hostname or ''
    if ':' in host:
        host = f'[{host}]'  # as Django's ALLOWED_HOSTS writes IPv6
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = ['.localhost', '127.0.0.1', '[::1]']  # as Django does
    if validate_host(host, allowed):
        return []
    return [checks.Warning(
        f"ONECRON['BASE_URL'] names the host {host!r}, which is not in "
        f"ALLOWED_HOSTS: Django would refuse the scheduler's calls (400)",
        hint='add it to ALLOWED_HOSTS, or set BASE_URL to a URL of an '
             'allowed host', id='onecron.W001')]
