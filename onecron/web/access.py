"""Who may see and use the status page and the job URLs, and the CSRF
tokens of the page's forms.

The job URLs (:class:`JobAccess`, ``job_access``) take one check: ``'any'``
(the default: the token is the key), ``'loopback'`` or a callable
``(request) -> bool``. The status page (:class:`Access`) takes three, in
this order:

1. ``status_access``: ``'loopback'`` (the default) lets in only clients on
   this machine; ``'any'`` lets in everyone, and needs basic auth; a
   callable ``(request) -> bool`` is the application's own login.
2. HTTP basic auth, when ``status_user`` and ``status_password_hash`` are
   set (make the hash with :func:`hash_password`).
3. On POST: the form's ``csrf`` field must be the HMAC of the client's
   random cookie, keyed with a secret derived from the app's first secret.

For both, the client's address is ``REMOTE_ADDR``. ``X-Forwarded-For``
and ``Forwarded`` (RFC 7239) are read only when ``REMOTE_ADDR`` is one of
``trusted_proxies``; a request that names a forwarded client but comes
from a peer not in that list is never taken for a loopback one — a
reverse proxy on the same host would otherwise make every visitor look
local. Nor is a request from a trusted proxy that names no client at all
(nginx's ``proxy_pass`` sends no ``X-Forwarded-For`` unless told to): the
proxy's own address says nothing about who is behind it.

Failed basic auth logins are throttled per client address
(:class:`LoginThrottle`): after five within a minute the page answers 429
without checking the password until the minute has passed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import math
import secrets
from collections.abc import Callable, Sequence
from typing import NamedTuple

from webob import Request, Response

from onecron.reporting import CallbackFailures, Reporter
from onecron.web.addresses import (
    _address,
    _client_address,
    _is_loopback,
    _networks,
)
from onecron.web.passwords import LoginThrottle as LoginThrottle
from onecron.web.passwords import check_password_hash as check_password_hash
from onecron.web.passwords import hash_password as hash_password
from onecron.web.passwords import verify_password as verify_password

log = logging.getLogger(__name__)

#: ``status_access=`` and ``job_access=``: a policy name, or a callable
#: deciding per request
Policy = str | Callable[[Request], bool]
POLICIES = ('loopback', 'any')

#: the cookie holding the client's random CSRF value
CSRF_COOKIE = 'onecron_csrf'
#: the form field holding the CSRF token
CSRF_FIELD = 'csrf'


class Denied(NamedTuple):
    """Why a request may not see the page: 403, 401 asking to log in, or
    429 after too many failed logins."""

    status: int
    reason: str
    #: with 429: the seconds until the client may try again
    retry_after: int | None = None


class Access:
    """Decides who may use the status page and checks its CSRF tokens.

    :param policy: ``'loopback'``, ``'any'`` (basic auth required) or a
        callable ``(request) -> bool``
    :param user: the basic auth user name, or None for no basic auth
    :param password_hash: made with :func:`hash_password`
    :param trusted_proxies: addresses or networks of reverse proxies
        whose ``X-Forwarded-For`` and ``Forwarded`` are believed
    :param secret: the key the CSRF key is derived from
    :param throttle: counts failed basic auth logins per client; by
        default five per minute
    :param failures: reports a failing ``policy`` callable (once per
        exception type); by default it is logged, once per type too
    """

    def __init__(self, policy: Policy = 'loopback', *,
                 user: str | None = None, password_hash: str | None = None,
                 trusted_proxies: Sequence[str] = (),
                 secret: str,
                 throttle: LoginThrottle | None = None,
                 failures: CallbackFailures | None = None) -> None:
        if not callable(policy) and policy not in POLICIES:
            raise ValueError(f'status_access must be one of '
                             f'{", ".join(POLICIES)} or a callable, '
                             f'got {policy!r}')
        if (user is None) != (password_hash is None):
            raise ValueError('give both status_user and '
                             'status_password_hash, or neither')
        if password_hash is not None:
            check_password_hash(password_hash)
        if policy == 'any' and user is None:
            raise ValueError("status_access='any' would open the status "
                             'page to everyone: set status_user and '
                             'status_password_hash too')
        if not secret:
            raise ValueError('the CSRF key needs a non-empty secret')
        self.policy = policy
        self.user = user
        self._password_hash = password_hash
        self.trusted_proxies = _networks(trusted_proxies)
        self.throttle = throttle if throttle is not None else LoginThrottle()
        self._failures = (failures if failures is not None
                          else CallbackFailures(Reporter()))
        self._csrf_key = hmac.new(secret.encode('utf-8'),
                                  b'onecron status page csrf',
                                  hashlib.sha256).digest()

    # --- who is asking ------------------------------------------------

    def client_address(self, request: Request) -> str | None:
        """The client's IP address, or None if it cannot be told.

        ``X-Forwarded-For`` and ``Forwarded`` (its ``for=``) count only
        when the peer is a trusted proxy; then the client is the
        right-most address in them that is not a trusted proxy. None when
        the peer is not trusted but sends forwarding headers (a proxy
        onecron was not told about), when a trusted proxy names no
        client, names it ``unknown`` or obfuscated, or when the two
        headers name different clients.
        """
        return _client_address(request, self.trusted_proxies)

    def denied(self, request: Request) -> Denied | None:
        """Why ``request`` may not use the page, or None if it may."""
        if callable(self.policy):
            try:
                allowed = bool(self.policy(request))
            except Exception as exc:  # the application's own code
                self._failures.report('status_access', exc, 'the status '
                                      'page is refused (403)')
                allowed = False
            if not allowed:
                return Denied(403, 'You may not see this page.')
        elif self.policy == 'loopback':
            if not _is_loopback(request, self.trusted_proxies):
                return Denied(403, 'The status page answers only clients '
                              'on this machine (status_access=loopback); '
                              'behind a reverse proxy, list it in '
                              'trusted_proxies and have it send '
                              'X-Forwarded-For.')
        if self.user is not None:
            return self._login(request)
        return None

    def _login(self, request: Request) -> Denied | None:
        """Check the basic auth credentials, within the throttle."""
        client = self._throttle_key(request)
        throttle = self.throttle
        scheme = request.headers.get('Authorization', '').partition(' ')[0]
        # only a login attempt is counted; anyone may be asked to log in
        wait = (throttle.attempt(client) if scheme.lower() == 'basic'
                else throttle.wait(client))
        if wait:
            seconds = max(1, math.ceil(wait))
            return Denied(429, f'Too many failed logins from your address: '
                          f'try again in {seconds} s.', seconds)
        if scheme.lower() != 'basic':
            return Denied(401, 'Log in to see the status page.')
        if self._authenticated(request):
            throttle.succeeded(client)
            return None
        if throttle.wait(client):
            log.warning('status page: %d failed logins within %g s from '
                        '%s: refused until they are older', throttle.limit,
                        throttle.window, client)
        return Denied(401, 'Log in to see the status page.')

    def _throttle_key(self, request: Request) -> str:
        """Whom failed logins are counted against: the client's address
        (an IPv6 one's /64, what one subscriber gets), else the peer's."""
        client = _address(self.client_address(request) or '')
        if client is None:
            return f'peer {request.remote_addr}'
        if isinstance(client, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((client, 64), strict=False))
        return str(client)

    def _authenticated(self, request: Request) -> bool:
        assert self.user is not None and self._password_hash is not None
        scheme, _, credentials = request.headers.get(
            'Authorization', '').partition(' ')
        if scheme.lower() != 'basic':
            return False
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
            user, colon, password = decoded.decode('utf-8').partition(':')
        except ValueError:  # not base64 (nor ASCII), not UTF-8
            return False
        # both always checked: the time taken does not tell which was wrong
        user_ok = hmac.compare_digest(user.encode('utf-8'),
                                      self.user.encode('utf-8'))
        password_ok = verify_password(password, self._password_hash)
        return bool(colon) and user_ok and password_ok

    # --- CSRF ---------------------------------------------------------

    def csrf_token(self, request: Request, response: Response,
                   path: str) -> str:
        """The token for the forms of a page about to be sent.

        Sets the client's random cookie (limited to ``path``) on
        ``response`` if the request did not bring a usable one.
        """
        value = request.cookies.get(CSRF_COOKIE, '')
        if not _usable_cookie(value):
            value = secrets.token_urlsafe(32)
            response.set_cookie(CSRF_COOKIE, value, path=path, httponly=True,
                                samesite='strict',
                                secure=request.scheme == 'https')
        return self._sign(value)

    def csrf_ok(self, request: Request) -> bool:
        """Whether the POSTed ``csrf`` field fits the client's cookie."""
        value = request.cookies.get(CSRF_COOKIE, '')
        token = request.POST.get(CSRF_FIELD, '')
        if not _usable_cookie(value) or not isinstance(token, str):
            return False
        return hmac.compare_digest(self._sign(value).encode('ascii'),
                                   token.encode('utf-8'))

    def _sign(self, value: str) -> str:
        return hmac.new(self._csrf_key, value.encode('ascii'),
                        hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        policy = ('callable' if callable(self.policy) else self.policy)
        auth = f' user={self.user!r}' if self.user is not None else ''
        return f'<Access {policy}{auth} proxies={len(self.trusted_proxies)}>'


#: the loopback addresses a call from this host comes from
_LOOPBACKS = (ipaddress.ip_address('127.0.0.1'), ipaddress.ip_address('::1'))


class JobAccess:
    """Decides who may call the job URLs (``job_access``).

    :param policy: ``'any'`` (the default: whoever holds a valid token),
        ``'loopback'`` (clients on this machine, behind ``trusted_proxies``
        as for the status page) or a callable ``(request) -> bool``
    :param trusted_proxies: addresses or networks of reverse proxies
        whose ``X-Forwarded-For`` is believed
    """

    def __init__(self, policy: Policy = 'any', *,
                 trusted_proxies: Sequence[str] = ()) -> None:
        if not callable(policy) and policy not in POLICIES:
            raise ValueError(f'job_access must be one of '
                             f'{", ".join(POLICIES)} or a callable, '
                             f'got {policy!r}')
        self.policy = policy
        self.trusted_proxies = _networks(trusted_proxies)

    def refuses_direct_local_calls(self) -> bool:
        """Whether a call from this host straight to the application
        server, naming no client (as the scheduler's calls are), is
        refused: ``'loopback'`` with a loopback address among the trusted
        proxies, whose calls must name their client."""
        return self.policy == 'loopback' and any(
            address in network for network in self.trusted_proxies
            for address in _LOOPBACKS if network.version == address.version)

    def allows(self, request: Request) -> bool:
        """Whether ``request`` may call a job URL.

        The callable's exceptions propagate: the caller refuses the
        request and reports them.
        """
        if callable(self.policy):
            return bool(self.policy(request))
        if self.policy == 'loopback':
            return _is_loopback(request, self.trusted_proxies)
        return True

    def client_address(self, request: Request) -> str | None:
        """The client's IP address, as :meth:`Access.client_address`."""
        return _client_address(request, self.trusted_proxies)

    def __repr__(self) -> str:
        policy = 'callable' if callable(self.policy) else self.policy
        return f'<JobAccess {policy} proxies={len(self.trusted_proxies)}>'


def _usable_cookie(value: str) -> bool:
    """A cookie value we could have made: long, URL-safe base64 only."""
    return 32 <= len(value) <= 128 and value.isascii() and all(
        char.isalnum() or char in '-_' for char in value)
