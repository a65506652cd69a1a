"""The application ids (tenants) of a :class:`~onecron.CronApp` and
their base URLs: where each id's scheduler sends the job URLs.

It owns the settings that may change after the app is made
(``base_url``, ``allowed_hosts``, ``max_application_ids``): one owner,
checked on every change, so every part sees the same value.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from webob import Request

from onecron.errors import OnecronError
from onecron.job import printable
from onecron.protocol.hosts import (
    HostRule,
    check_base_url,
    host_allowed,
    parse_allowed_hosts,
)

log = logging.getLogger(__name__)

#: ``application_id``: one id, or a callable finding it per request
ApplicationId = str | Callable[[Request], 'str | None']
#: ``base_url``: one URL, or the URL of each application id
BaseUrl = str | Callable[[str], str]

__all__ = ['ApplicationId', 'BaseUrl', 'Tenants']


class Tenants:
    """The application ids and their base URLs: the
    :class:`~onecron.CronApp` keywords ``application_id``, ``base_url``,
    ``allowed_hosts`` and ``max_application_ids``."""

    def __init__(self, application_id: ApplicationId, *,
                 base_url: BaseUrl | None, allowed_hosts: Sequence[str],
                 max_application_ids: int) -> None:
        if not (callable(application_id) or (
                isinstance(application_id, str) and application_id
                and printable(application_id))):
            raise ValueError('application_id must be a non-empty str of '
                             'printable characters or a callable, '
                             f'got {application_id!r:.80}')
        self.application_id = application_id
        #: the id when it is fixed; None when a callable finds it
        self.static_id = (application_id if isinstance(application_id, str)
                          else None)
        self.base_url = base_url
        self.allowed_hosts = allowed_hosts
        self.max_application_ids = max_application_ids
        # the base URLs given to start() or learned from an allowed host
        self.bases: dict[str, str] = {}
        # the ids warned about: no base URL, or over the cap (bounded)
        self._warned: set[str] = set()
        self._warned_full = False

    @property
    def base_url(self) -> BaseUrl | None:
        """The configured base URL: a str, a callable of the id, or None."""
        return self._base_url

    @base_url.setter
    def base_url(self, value: BaseUrl | None) -> None:
        self._base_url = (value if value is None or callable(value)
                          else check_base_url(value))

    @property
    def allowed_hosts(self) -> tuple[HostRule, ...]:
        """The hosts a base URL may be learned from (parsed)."""
        return self._allowed_hosts

    @allowed_hosts.setter
    def allowed_hosts(self, value: Sequence[str | HostRule]) -> None:
        if isinstance(value, str):
            parse_allowed_hosts(value)  # raises, naming the mistake
        rules = [entry for entry in value if isinstance(entry, HostRule)]
        names = [entry for entry in value if not isinstance(entry, HostRule)]
        self._allowed_hosts = tuple(rules) + parse_allowed_hosts(names)

    @property
    def max_application_ids(self) -> int:
        """The most application ids this process schedules."""
        return self._max_application_ids

    @max_application_ids.setter
    def max_application_ids(self, value: int) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f'max_application_ids must be a positive int, '
                             f'got {value!r}')
        self._max_application_ids = value

    def application_id_of(self, request: Request) -> str | None:
        """The application id a request belongs to; None: no tenant's.

        A callable that returns anything but a non-empty str of
        printable characters or None raises
        :class:`~onecron.OnecronError`, and what the callable raises
        propagates: callers refuse such a request, never run it as a
        made-up tenant.
        """
        if isinstance(self.application_id, str):
            return self.application_id
        app_id = self.application_id(request)
        if app_id is None or (isinstance(app_id, str) and app_id
                              and printable(app_id)):
            return app_id
        raise OnecronError(f'application_id callable returned '
                           f'{app_id!r:.80}, not a non-empty str of '
                           f'printable characters or None')

    def base_url_of(self, application_id: str) -> str | None:
        """Where the scheduler of ``application_id`` sends its calls: the
        one given to :meth:`~onecron.CronApp.start`, else the configured
        ``base_url`` (called with the id when it is a callable), else the
        one learned from a request for one of ``allowed_hosts``; None when
        there is none.

        Never a request's ``Host`` alone: whoever chose it would receive
        the job URLs. A failing or bad ``base_url`` callable is reported
        and gives None.
        """
        given = self.bases.get(application_id)
        configured = self.base_url
        if given is not None or configured is None:
            return given
        if not callable(configured):
            return configured
        try:
            return check_base_url(configured(application_id),
                                  'the base_url callable\'s result')
        except Exception as exc:  # the application's own code
            self.warn_once(application_id, f'base_url({application_id!r}) '
                           f'failed: {exc}', exc)
            return None

    def use_base_url(self, application_id: str, base_url: str) -> None:
        """Use ``base_url`` for ``application_id`` where no ``base_url``
        is configured: the scheduler, chains and ``run_soon`` call it."""
        self.bases[application_id] = check_base_url(base_url)

    def learns_from(self, request: Request) -> bool:
        """Whether the scheduler may take ``request``'s URL as its base."""
        return bool(self.allowed_hosts) and host_allowed(
            request.host, request.scheme, self.allowed_hosts)

    def warn_once(self, application_id: str, message: str,
                  exc: BaseException | None = None) -> None:
        """A WARNING about an id (an ERROR with the exception that caused
        it), once per id."""
        if application_id in self._warned:
            return
        if len(self._warned) >= self.max_application_ids:
            # bounded, so that made-up ids cannot flood the log either
            if not self._warned_full:
                self._warned_full = True
                log.warning('more than %d application ids warned about: '
                            'no more such warnings',
                            self.max_application_ids)
            return
        self._warned.add(application_id)
        log.log(logging.WARNING if exc is None else logging.ERROR,
                'application %r: %s', application_id, message, exc_info=exc)
