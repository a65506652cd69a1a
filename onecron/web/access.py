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
import binascii
import hashlib
import hmac
import ipaddress
import logging
import math
import re
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from webob import Request, Response

from onecron.reporting import CallbackFailures, Reporter

log = logging.getLogger(__name__)

#: ``status_access=`` and ``job_access=``: a policy name, or a callable
#: deciding per request
Policy = str | Callable[[Request], bool]
POLICIES = ('loopback', 'any')

#: the cookie holding the client's random CSRF value
CSRF_COOKIE = 'onecron_csrf'
#: the form field holding the CSRF token
CSRF_FIELD = 'csrf'

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# scrypt costs (RFC 7914 "interactive"): ~16 MiB and some 50 ms per check
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2 ** 14, 8, 1
_PBKDF2_MIN_ITERATIONS = 100_000
_FORWARDED_HEADERS = ('X-Forwarded-For', 'Forwarded', 'X-Real-IP')
# RFC 7239: forwarded-pair = token "=" value; value = token / quoted-string
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_FORWARDED_PAIR = re.compile(
    rf'({_TOKEN})=({_TOKEN}|"(?:[^"\\]|\\.)*")')
# node-port = port / obfport
_NODE_PORT = re.compile(r':(?:[0-9]{1,5}|_[A-Za-z0-9._-]+)')


def hash_password(password: str) -> str:
    """A salted scrypt hash of ``password`` for ``status_password_hash``.

    ``scrypt$16384$8$1$<salt>$<hash>``, base64. Make one with
    ``python -c "import getpass, onecron.web.access as a;
    print(a.hash_password(getpass.getpass()))"``.
    """
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode('utf-8'), salt=salt,
                            n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)
    return (f'scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}$'
            f'{_b64(salt)}${_b64(digest)}')


def verify_password(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches ``password_hash``, in constant time.

    Reads :func:`hash_password`'s format and
    ``pbkdf2_sha256$<iterations>$<salt>$<hash>`` (Django's). A malformed
    hash matches nothing.
    """
    try:
        expected, compute = _parse_hash(password_hash)
        actual = compute(password.encode('utf-8'))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def check_password_hash(password_hash: str) -> None:
    """Raise ``ValueError`` if ``password_hash`` is not a usable hash."""
    _parse_hash(password_hash)


def _parse_hash(text: str) -> tuple[bytes, Callable[[bytes], bytes]]:
    """The digest in ``text`` and the function that recomputes it."""
    if not isinstance(text, str):
        raise ValueError(f'a password hash is a str, '
                         f'got {type(text).__name__}')
    kind, _, rest = text.partition('$')
    parts = rest.split('$')
    try:
        if kind == 'scrypt' and len(parts) == 5:
            n, r, p = (int(part) for part in parts[:3])
            salt, digest = _unb64(parts[3]), _unb64(parts[4])
            if n < 2 ** 10 or n & (n - 1) or not 0 < r * p <= 64:
                raise ValueError('scrypt costs out of range')
            return digest, lambda password: hashlib.scrypt(
                password, salt=salt, n=n, r=r, p=p, dklen=len(digest),
                maxmem=256 * r * n)
        if kind == 'pbkdf2_sha256' and len(parts) == 3:
            iterations = int(parts[0])
            salt = parts[1].encode('utf-8')
            digest = _unb64(parts[2])
            if iterations < _PBKDF2_MIN_ITERATIONS:
                raise ValueError(f'pbkdf2 iterations {iterations} are fewer '
                                 f'than {_PBKDF2_MIN_ITERATIONS}')
            return digest, lambda password: hashlib.pbkdf2_hmac(
                'sha256', password, salt, iterations, dklen=len(digest))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f'not a usable password hash ({exc}); make one '
                         'with onecron.access.hash_password') from None
    raise ValueError('not a password hash of onecron.access.hash_password '
                     '(scrypt$...) or Django (pbkdf2_sha256$...)')


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode('ascii')


def _unb64(text: str) -> bytes:
    data = base64.b64decode(text, validate=True)
    if not data:
        raise ValueError('empty base64 field')
    return data


def _address(text: str) -> _Address | None:
    """``text`` as an IP address (IPv4-mapped IPv6 as IPv4), or None."""
    text = text.strip()
    if text.startswith('[') and ']' in text:  # [v6]:port, as in Forwarded
        text = text[1:text.index(']')]
    elif text.count(':') == 1:  # v4:port
        text = text.partition(':')[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _networks(proxies: Iterable[str]) -> tuple[_Network, ...]:
    if isinstance(proxies, str):
        raise TypeError('trusted_proxies is a list of addresses, not a str')
    try:
        return tuple(ipaddress.ip_network(proxy, strict=False)
                     for proxy in proxies)
    except ValueError as exc:
        raise ValueError(f'trusted_proxies: {exc}') from None


def _trusted(address: _Address | None,
             proxies: tuple[_Network, ...]) -> bool:
    return address is not None and any(
        address in network for network in proxies)


def _client_address(request: Request,
                    proxies: tuple[_Network, ...]) -> str | None:
    """The client's IP address behind ``proxies``, or None if it cannot
    be told (see :meth:`Access.client_address`)."""
    peer = _address(request.remote_addr or '')
    headers = request.headers
    if not _trusted(peer, proxies):
        if any(name in headers for name in _FORWARDED_HEADERS):
            return None
        return None if peer is None else str(peer)
    chains: list[list[_Address | None] | None] = []
    if 'X-Forwarded-For' in headers:
        # WSGI joins repeated headers with commas: one list of hops
        chains.append([_address(hop) for hop in
                       headers['X-Forwarded-For'].split(',') if hop.strip()])
    if 'Forwarded' in headers:
        nodes = _forwarded_for(headers['Forwarded'])
        chains.append(None if nodes is None
                      else [_node_address(node) for node in nodes])
    # a trusted proxy that names no client tells nothing of it; with both
    # headers, the one the proxy did not write is the client's: they must
    # agree
    clients = {_origin(chain, proxies) for chain in chains}
    if len(clients) != 1:
        return None
    client = clients.pop()
    return None if client is None else str(client)


def _origin(chain: list[_Address | None] | None,
            proxies: tuple[_Network, ...]) -> _Address | None:
    """The right-most hop of ``chain`` that is not a trusted proxy (the
    hops left of it may be the client's own inventions), or None."""
    if not chain:
        return None
    for hop in reversed(chain):
        if not _trusted(hop, proxies):
            return hop
    return chain[0]  # proxies all the way: the first one is the client


def _forwarded_for(header: str) -> list[str | None] | None:
    """The ``for=`` node of each element of a ``Forwarded`` header
    (RFC 7239), left to right, unquoted; None for an element without
    one. None for the whole header if it does not parse."""
    elements = _split_quoted(header, ',')
    if elements is None:
        return None
    nodes: list[str | None] = []
    for element in elements:
        if not element.strip(' \t'):
            continue  # an empty list element, allowed and ignored
        node = None
        seen = False
        for pair in _split_quoted(element, ';') or ():
            match = _FORWARDED_PAIR.fullmatch(pair.strip(' \t'))
            if match is None:
                return None
            name, value = match.groups()
            if name.lower() != 'for':
                continue
            if seen:  # a parameter occurs once per element
                return None
            seen = True
            node = (re.sub(r'\\(.)', r'\1', value[1:-1])
                    if value.startswith('"') else value)
        nodes.append(node)
    return nodes


def _split_quoted(text: str, separator: str) -> list[str] | None:
    """``text`` split at ``separator`` outside quoted strings; None if a
    quoted string is not closed."""
    parts, start, quoted, escaped = [], 0, False, False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif quoted and char == '\\':
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append(text[start:index])
            start = index + 1
    if quoted:
        return None
    parts.append(text[start:])
    return parts


def _node_address(node: str | None) -> _Address | None:
    """A ``Forwarded`` node (``192.0.2.1``, ``[2001:db8::1]:80``) as an
    address; None for ``unknown``, obfuscated names and anything else."""
    if node is None:
        return None
    if node.startswith('['):
        host, bracket, port = node[1:].partition(']')
        if not bracket:
            return None
        version = 6
    else:
        host, colon, port = node.partition(':')
        port = colon + port
        version = 4
    if port and not _NODE_PORT.fullmatch(port):
        return None
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.version != version:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _is_loopback(request: Request, proxies: tuple[_Network, ...]) -> bool:
    """Whether the client behind ``proxies`` is on this machine."""
    client = _client_address(request, proxies)
    address = None if client is None else _address(client)
    return address is not None and address.is_loopback


class Denied(NamedTuple):
    """Why a request may not see the page: 403, 401 asking to log in, or
    429 after too many failed logins."""

    status: int
    reason: str
    #: with 429: the seconds until the client may try again
    retry_after: int | None = None


class LoginThrottle:
    """Counts failed logins per client and refuses a client that has too
    many.

    A client that failed ``limit`` times within ``window`` seconds may
    not try again until the oldest of those failures is ``window``
    seconds old: at most ``limit`` guesses per ``window`` per client.
    A try is counted as it starts, so concurrent requests cannot slip
    past the limit; a try that succeeds is given back, but does not wipe
    out the failures before it (behind one address a success may be
    someone else's). Memory is bounded: at most ``max_clients`` clients
    are tracked, the one whose last try is oldest is forgotten first.

    :param limit: failed logins a client may have within ``window``
    :param window: seconds a failed login counts
    :param max_clients: clients tracked at most
    :param clock: monotonic seconds (:func:`time.monotonic`)
    """

    def __init__(self, limit: int = 5, window: float = 60.0, *,
                 max_clients: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if limit < 1 or max_clients < 1 or not window > 0:
            raise ValueError('limit, window and max_clients must be '
                             'positive')
        self.limit = limit
        self.window = window
        self.max_clients = max_clients
        self._clock = clock
        # the times of each client's tries that count, oldest first; the
        # clients in the order of their last try
        self._tries: OrderedDict[str, deque[float]] = OrderedDict()
        self._mutex = threading.Lock()

    def __len__(self) -> int:
        """The number of clients tracked."""
        return len(self._tries)

    def wait(self, client: str) -> float:
        """Seconds until ``client`` may try to log in; 0 if it may now."""
        with self._mutex:
            return self._wait(client, self._clock())

    def attempt(self, client: str) -> float:
        """Count a try of ``client`` starting now: 0 if it may go ahead,
        else the seconds until it may try (and nothing is counted)."""
        with self._mutex:
            now = self._clock()
            wait = self._wait(client, now)
            if wait:
                return wait
            tries = self._tries.get(client)
            if tries is None:
                self._forget_expired(now)
                if len(self._tries) >= self.max_clients:
                    self._tries.popitem(last=False)
                tries = self._tries[client] = deque()
            tries.append(now)
            self._tries.move_to_end(client)
            return 0.0

    def succeeded(self, client: str) -> None:
        """The try :meth:`attempt` counted last for ``client`` succeeded:
        give it back."""
        with self._mutex:
            tries = self._tries.get(client)
            if tries:
                tries.pop()
            if tries is not None and not tries:
                del self._tries[client]

    def _wait(self, client: str, now: float) -> float:
        tries = self._tries.get(client)
        if tries is None:
            return 0.0
        while tries and tries[0] <= now - self.window:
            tries.popleft()
        if not tries:
            del self._tries[client]
            return 0.0
        if len(tries) < self.limit:
            return 0.0
        return tries[0] + self.window - now

    def _forget_expired(self, now: float) -> None:
        """Drop the clients, oldest first, whose tries no longer count."""
        while self._tries:
            client, tries = next(iter(self._tries.items()))
            if tries and tries[-1] > now - self.window:
                return
            del self._tries[client]

    def __repr__(self) -> str:
        return (f'<LoginThrottle {self.limit} per {self.window:g} s, '
                f'{len(self._tries)} client(s)>')


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
