"""Who may use the status page: addresses, proxies, basic auth, CSRF."""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import secrets
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import pytest
from webob import Request, Response

from onecron import CronApp
from onecron.web.access import (
    CSRF_COOKIE,
    Access,
    JobAccess,
    LoginThrottle,
    check_password_hash,
    hash_password,
    verify_password,
)
from onecron.web.status.page import StatusPage

from .conftest import LiveServer

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

SECRET = 'csrf test secret'
HASH = hash_password('correct horse')


def cheap_hash(password: str) -> str:
    """A valid scrypt hash at the lowest cost accepted: fast tests."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=1024, r=1, p=1)
    return (f'scrypt$1024$1$1${base64.b64encode(salt).decode()}$'
            f'{base64.b64encode(digest).decode()}')


CHEAP = cheap_hash('pw')


def request(remote_addr: str = '127.0.0.1', *, method: str = 'GET',
            headers: dict[str, str] | None = None,
            post: dict[str, str] | None = None,
            scheme: str = 'http') -> Request:
    req = Request.blank('/cronjobs/', remote_addr=remote_addr,
                        method=method, headers=headers or {},
                        POST=post, base_url=f'{scheme}://example.org')
    return req


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f'{user}:{password}'.encode()).decode()
    return {'Authorization': f'Basic {token}'}


def django_hash(password: str, salt: str, iterations: int) -> str:
    digest = hashlib.pbkdf2_hmac('sha256', password.encode(), salt.encode(),
                                 iterations)
    return (f'pbkdf2_sha256${iterations}${salt}$'
            f'{base64.b64encode(digest).decode()}')


# --- passwords ------------------------------------------------------------


def test_hash_password_verifies_only_the_password() -> None:
    """A hash made by hash_password accepts its password and no other."""
    assert HASH.startswith('scrypt$16384$8$1$')
    assert verify_password('correct horse', HASH)
    assert not verify_password('correct horse ', HASH)
    assert not verify_password('', HASH)


def test_hash_password_is_salted() -> None:
    """Two hashes of one password differ, and both verify it."""
    other = hash_password('correct horse')
    assert other != HASH
    assert verify_password('correct horse', other)


def test_django_pbkdf2_hashes_verify() -> None:
    """A Django pbkdf2_sha256 hash is accepted as a password hash."""
    made = django_hash('s3cret', 'somesalt', 100_000)
    assert verify_password('s3cret', made)
    assert not verify_password('s3cret!', made)


@pytest.mark.parametrize('text', [
    '', 'plain text', 'scrypt$16384$8$1$c2FsdA==', 'scrypt$x$8$1$c2Fs$c2Fs',
    'scrypt$1000$8$1$c2FsdA==$c2FsdA==',  # n not a power of two
    'scrypt$16384$8$1$not base64!$c2FsdA==',
    'scrypt$16384$8$1$$c2FsdA==',
    'md5$abc$def', django_hash('pw', 'salt', 1000),  # too few iterations
], ids=['empty', 'plain', 'missing-field', 'bad-number', 'bad-n',
        'bad-base64', 'empty-salt', 'unknown-kind', 'weak-pbkdf2'])
def test_malformed_hashes_are_refused(text: str) -> None:
    """A malformed or weak hash fails the check and matches no password."""
    with pytest.raises(ValueError):
        check_password_hash(text)
    assert not verify_password('pw', text)


def test_a_hash_must_be_text() -> None:
    """A password hash given as bytes is refused with a clear message."""
    with pytest.raises(ValueError, match='a password hash is a str'):
        check_password_hash(b'scrypt$...')  # type: ignore[arg-type]


# --- addresses and proxies ------------------------------------------------


@pytest.mark.parametrize('remote_addr, allowed', [
    ('127.0.0.1', True), ('127.8.9.10', True), ('::1', True),
    ('::ffff:127.0.0.1', True), ('10.0.0.5', False), ('192.0.2.1', False),
    ('2001:db8::1', False), ('', False), ('not an address', False),
], ids=lambda value: str(value) or 'empty')
def test_loopback_policy(remote_addr: str, allowed: bool) -> None:
    """By default only clients on this machine may use the page."""
    denied = Access(secret=SECRET).denied(request(remote_addr))
    assert (denied is None) is allowed
    if not allowed:
        assert denied is not None and denied.status == 403


@pytest.mark.parametrize('header', ['X-Forwarded-For', 'Forwarded',
                                    'X-Real-IP'])
def test_untrusted_local_proxy_is_not_loopback(header: str) -> None:
    """A loopback peer that forwards a client (a proxy not listed in
    trusted_proxies) is not taken for a local client."""
    denied = Access(secret=SECRET).denied(request(
        headers={header: '127.0.0.1'}))
    assert denied is not None and denied.status == 403
    assert 'trusted_proxies' in denied.reason


@pytest.mark.parametrize('proxies, remote_addr, forwarded, client', [
    ((), '192.0.2.1', None, '192.0.2.1'),
    ((), '192.0.2.1', '127.0.0.1', None),  # untrusted peer: header ignored
    (('10.0.0.2',), '10.0.0.2', '127.0.0.1', '127.0.0.1'),
    (('10.0.0.2',), '10.0.0.2', '203.0.113.9', '203.0.113.9'),
    (('10.0.0.2',), '10.0.0.2', None, None),  # the proxy names nobody
    # a client's own X-Forwarded-For is to the left of what the proxy adds
    (('10.0.0.2',), '10.0.0.2', '127.0.0.1, 203.0.113.9', '203.0.113.9'),
    (('10.0.0.0/8',), '10.0.0.2', '127.0.0.1, 10.1.1.1', '127.0.0.1'),
    (('10.0.0.2',), '10.0.0.3', '127.0.0.1', None),
    (('::1',), '::1', '[2001:db8::5]:443', '2001:db8::5'),
    (('10.0.0.2',), '10.0.0.2', '198.51.100.7:5123', '198.51.100.7'),
    (('10.0.0.2',), '10.0.0.2', 'garbage', None),
], ids=['direct', 'untrusted-peer', 'trusted-local', 'trusted-remote',
        'trusted-no-header', 'spoofed-left', 'network-chain',
        'other-peer', 'ipv6-port', 'ipv4-port', 'garbage'])
def test_client_address(proxies: tuple[str, ...], remote_addr: str,
                        forwarded: str | None, client: str | None) -> None:
    """X-Forwarded-For names the client only when the peer is a trusted
    proxy: the right-most address that is not a trusted proxy; a trusted
    proxy that names no client leaves it unknown."""
    headers = {} if forwarded is None else {'X-Forwarded-For': forwarded}
    access = Access(trusted_proxies=proxies, secret=SECRET)
    assert access.client_address(request(remote_addr,
                                         headers=headers)) == client


@pytest.mark.parametrize('headers', [
    {}, {'X-Forwarded-For': ''}, {'X-Forwarded-For': ' , '},
    {'X-Forwarded-For': 'unknown'}, {'Forwarded': 'for=unknown'},
    {'Forwarded': 'for="_hidden"'}, {'Forwarded': 'proto=https'},
    {'Forwarded': 'for="127.0.0.1'}, {'X-Real-IP': '127.0.0.1'},
    {'X-Forwarded-For': '127.0.0.1', 'Forwarded': 'for=192.0.2.7'},
    {'X-Forwarded-For': '192.0.2.7', 'Forwarded': 'for=127.0.0.1'},
], ids=['nothing', 'empty-xff', 'blank-xff', 'xff-unknown',
        'forwarded-unknown', 'obfuscated', 'no-for', 'unclosed-quote',
        'x-real-ip-only', 'headers-disagree', 'headers-disagree-2'])
@pytest.mark.parametrize('peer', ['127.0.0.1', '::1'])
def test_trusted_local_proxy_naming_no_client_is_not_loopback(
        peer: str, headers: dict[str, str]) -> None:
    """A trusted proxy on this machine that does not name its client (no
    X-Forwarded-For nor Forwarded, unknown, obfuscated, unparsable, or the
    two disagree) is not a loopback client: not for the status page, not
    for job_access='loopback'."""
    proxies = ['127.0.0.1', '::1']
    access = Access(trusted_proxies=proxies, secret=SECRET)
    denied = access.denied(request(peer, headers=headers))
    assert denied is not None and denied.status == 403
    assert 'X-Forwarded-For' in denied.reason
    assert access.client_address(request(peer, headers=headers)) is None
    jobs = JobAccess('loopback', trusted_proxies=proxies)
    assert not jobs.allows(request(peer, headers=headers))


@pytest.mark.parametrize('forwarded, client', [
    ('for=127.0.0.1', '127.0.0.1'),
    ('For=198.51.100.17', '198.51.100.17'),
    ('for="[::1]:8080"', '::1'),
    ('for="[2001:db8:cafe::17]:4711"', '2001:db8:cafe::17'),
    ('for="[::ffff:127.0.0.1]"', '127.0.0.1'),
    ('for=192.0.2.60;proto=http;by=203.0.113.43', '192.0.2.60'),
    ('proto=https; for=192.0.2.60', '192.0.2.60'),
    ('for="127.0.0.1:_obfport"', '127.0.0.1'),
    ('for="127.0.0.\\1"', '127.0.0.1'),  # a quoted-pair
    ('for=127.0.0.1, for=198.51.100.17', '198.51.100.17'),
    ('for=198.51.100.17, for=10.0.0.9', '198.51.100.17'),
    (', for=203.0.113.9 ,', '203.0.113.9'),
    ('for=203.0.113.9;ext="a,b;for=127.0.0.1"', '203.0.113.9'),
    ('for=unknown', None), ('for="_gazonk"', None), ('for=_x:80', None),
    ('for=127.0.0.1, for=unknown', None),
    ('for=[::1]', None), ('for="::1"', None), ('for="[127.0.0.1]"', None),
    ('for="[::1"', None), ('for="127.0.0.1:999999"', None),
    ('for="127.0.0.1:x"', None), ('for="127.0.0.1', None),
    ('for=127.0.0.1;for=127.0.0.2', None), ('for = 127.0.0.1', None),
    ('by=10.0.0.2', None), ('', None), ('for=', None),
], ids=lambda value: repr(value))
def test_forwarded_header(forwarded: str, client: str | None) -> None:
    """RFC 7239 Forwarded from a trusted proxy: quoted values, IPv6 in
    brackets with an optional (obfuscated) port, the right-most untrusted
    for=; unknown, obfuscated and malformed nodes name no client."""
    access = Access(trusted_proxies=['10.0.0.0/8'], secret=SECRET)
    assert access.client_address(request('10.0.0.2', headers={
        'Forwarded': forwarded})) == client


def test_forwarded_and_x_forwarded_for_must_agree() -> None:
    """With both headers from a trusted proxy, the client is the one they
    both name: a client's own Forwarded, passed on by a proxy that only
    appends X-Forwarded-For, cannot make it local."""
    access = Access(trusted_proxies=['127.0.0.1'], secret=SECRET)
    both = {'X-Forwarded-For': '203.0.113.9', 'Forwarded': 'for=203.0.113.9'}
    assert access.client_address(request(headers=both)) == '203.0.113.9'
    local = {'X-Forwarded-For': '127.0.0.1',
             'Forwarded': 'for="[::1]:5000"'}
    assert access.client_address(request(headers=local)) is None
    spoofed = {'X-Forwarded-For': '203.0.113.9',
               'Forwarded': 'for=127.0.0.1'}
    assert access.denied(request(headers=spoofed)) is not None


def test_trusted_proxy_forwards_a_local_client() -> None:
    """Behind a listed proxy, a client on the proxy's machine gets in and a
    remote one does not."""
    access = Access(trusted_proxies=['10.0.0.2'], secret=SECRET)
    assert access.denied(request(
        '10.0.0.2', headers={'X-Forwarded-For': '127.0.0.1'})) is None
    assert access.denied(request(
        '10.0.0.2', headers={'X-Forwarded-For': '192.0.2.4'})) is not None


# --- callables and basic auth ---------------------------------------------


def test_callable_policy_decides() -> None:
    """status_access=callable lets in whom it returns True for."""
    access = Access(lambda req: req.headers.get('X-User') == 'admin',
                    secret=SECRET)
    assert access.denied(request('192.0.2.1',
                                 headers={'X-User': 'admin'})) is None
    denied = access.denied(request('127.0.0.1'))
    assert denied is not None and denied.status == 403


def test_callable_policy_that_raises_denies(
        caplog: pytest.LogCaptureFixture) -> None:
    """A status_access callable that raises denies access and is logged."""
    def broken(req: Request) -> bool:
        raise RuntimeError('login system down')

    with caplog.at_level(logging.ERROR, logger='onecron.web.access'):
        denied = Access(broken, secret=SECRET).denied(request())
    assert denied is not None and denied.status == 403
    assert 'login system down' in caplog.text


@pytest.mark.parametrize('headers, allowed', [
    (basic('ops', 'correct horse'), True),
    ({}, False),
    (basic('ops', 'wrong'), False),
    (basic('root', 'correct horse'), False),
    (basic('ops', ''), False),
    ({'Authorization': 'Basic !!!'}, False),
    ({'Authorization': 'Basic ' + base64.b64encode(b'\xff:x').decode()},
     False),
    ({'Authorization': 'Basic ' + base64.b64encode(
        b'opscorrect horse').decode()}, False),
    ({'Authorization': 'Bearer abc'}, False),
    ({'Authorization': 'Basic \xff\xfe=='}, False),
], ids=['right', 'missing', 'wrong-password', 'wrong-user', 'empty-password',
        'bad-base64', 'bad-utf8', 'no-colon', 'other-scheme', 'not-ascii'])
def test_basic_auth(headers: dict[str, str], allowed: bool) -> None:
    """With status_user set, the user and password are required (401)."""
    access = Access(user='ops', password_hash=HASH, secret=SECRET)
    denied = access.denied(request(headers=headers))
    assert (denied is None) is allowed
    if not allowed:
        assert denied is not None and denied.status == 401


def test_basic_auth_from_anywhere() -> None:
    """status_access='any' with basic auth admits remote clients that log
    in."""
    access = Access('any', user='ops', password_hash=HASH, secret=SECRET)
    assert access.denied(request(
        '192.0.2.1', headers=basic('ops', 'correct horse'))) is None
    denied = access.denied(request('192.0.2.1'))
    assert denied is not None and denied.status == 401


def test_basic_auth_does_not_open_loopback_to_others() -> None:
    """Basic auth adds to the loopback rule: a remote client with the right
    password still gets 403."""
    access = Access(user='ops', password_hash=HASH, secret=SECRET)
    denied = access.denied(request('192.0.2.1',
                                   headers=basic('ops', 'correct horse')))
    assert denied is not None and denied.status == 403


@pytest.mark.parametrize('make, error', [
    (lambda: Access('everyone', secret=SECRET), ValueError),
    (lambda: Access('any', secret=SECRET), ValueError),
    (lambda: Access(user='ops', secret=SECRET), ValueError),
    (lambda: Access(password_hash=HASH, secret=SECRET), ValueError),
    (lambda: Access(user='ops', password_hash='plain', secret=SECRET),
     ValueError),
    (lambda: Access(trusted_proxies='10.0.0.1', secret=SECRET), TypeError),
    (lambda: Access(trusted_proxies=['proxy.local'], secret=SECRET),
     ValueError),
    (lambda: Access(secret=''), ValueError),
], ids=['unknown-policy', 'any-without-auth', 'user-without-hash',
        'hash-without-user', 'bad-hash', 'proxies-str', 'proxy-name',
        'no-secret'])
def test_bad_settings_fail_at_construction(make: Callable[[], Access],
                                           error: type[Exception]) -> None:
    """Settings that would open the page or cannot work fail at once."""
    with pytest.raises(error):
        make()


def test_repr_names_the_policy_not_the_hash() -> None:
    """The repr names the policy and user, never the password hash."""
    text = repr(Access(user='ops', password_hash=HASH,
                       trusted_proxies=['10.0.0.1'], secret=SECRET))
    assert text == "<Access loopback user='ops' proxies=1>"
    assert repr(Access(lambda req: True, secret=SECRET)).startswith(
        '<Access callable')


# --- CSRF -------------------------------------------------------------------


def issue(access: Access, req: Request) -> tuple[str, Response]:
    response = Response()
    return access.csrf_token(req, response, '/cronjobs/'), response


def test_csrf_token_sets_a_strict_cookie() -> None:
    """A client without a cookie gets a random HttpOnly SameSite=Strict
    one, limited to the page's path."""
    _, response = issue(Access(secret=SECRET), request())
    cookie = response.headers['Set-Cookie']
    assert cookie.startswith(f'{CSRF_COOKIE}=')
    assert 'HttpOnly' in cookie and 'SameSite=strict' in cookie
    assert 'Path=/cronjobs/' in cookie and 'secure' not in cookie.lower()
    _, response = issue(Access(secret=SECRET), request(scheme='https'))
    assert 'secure' in response.headers['Set-Cookie'].lower()


def test_csrf_cookie_is_kept() -> None:
    """A client that has a cookie keeps it and gets the same token."""
    access = Access(secret=SECRET)
    token, response = issue(access, request())
    value = response.headers['Set-Cookie'].split(';')[0].split('=', 1)[1]
    again, response = issue(access, request(
        headers={'Cookie': f'{CSRF_COOKIE}={value}'}))
    assert again == token and 'Set-Cookie' not in response.headers


def posted(access: Access, cookie: str | None, token: str | None) -> bool:
    headers = {} if cookie is None else {'Cookie': f'{CSRF_COOKIE}={cookie}'}
    post = {} if token is None else {'csrf': token}
    return access.csrf_ok(request(method='POST', headers=headers, post=post))


def test_csrf_token_fits_only_its_cookie() -> None:
    """A POST passes only with the token made for the client's cookie."""
    access = Access(secret=SECRET)
    mine, other = 'a' * 43, 'b' * 43
    token = access.csrf_token(request(headers={
        'Cookie': f'{CSRF_COOKIE}={mine}'}), Response(), '/')
    assert posted(access, mine, token)
    assert not posted(access, other, token)
    assert not posted(access, None, token)
    assert not posted(access, mine, None)
    assert not posted(access, mine, token[:-1])
    assert not posted(access, mine, token + '0')
    assert not posted(access, mine, 'ü')


def test_csrf_token_depends_on_the_secret() -> None:
    """A token made with another secret is refused."""
    cookie = 'c' * 43
    token = Access(secret='another').csrf_token(request(headers={
        'Cookie': f'{CSRF_COOKIE}={cookie}'}), Response(), '/')
    assert not posted(Access(secret=SECRET), cookie, token)


@pytest.mark.parametrize('cookie', ['short', 'x' * 200, 'a' * 40 + '!!!',
                                    'ä' * 40])
def test_odd_csrf_cookies_are_replaced(cookie: str) -> None:
    """A cookie onecron could not have made is replaced, never signed."""
    access = Access(secret=SECRET)
    token, response = issue(access, request(headers={
        'Cookie': f'{CSRF_COOKIE}={cookie}'}))
    assert 'Set-Cookie' in response.headers
    assert not posted(access, cookie, token)


# --- throttling failed logins -----------------------------------------------


class Monotonic:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """verify_password, counting the hashes it computes."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, password: str, password_hash: str) -> bool:
        self.calls += 1
        return verify_password(password, password_hash)


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> Counting:
    counting = Counting()
    monkeypatch.setattr('onecron.web.access.verify_password', counting)
    return counting


def throttled(clock: Monotonic, **options: Any) -> Access:
    return Access('any', user='ops', password_hash=CHEAP, secret=SECRET,
                  throttle=LoginThrottle(clock=clock), **options)


def login(access: Access, address: str, password: str | None) -> int:
    """The status ``access`` answers a login from ``address`` (200 if it
    lets it in); no Authorization header with ``password=None``."""
    headers = {} if password is None else basic('ops', password)
    denied = access.denied(request(address, headers=headers))
    return 200 if denied is None else denied.status


def test_sixth_failed_login_within_a_minute_is_429(hashes: Counting) -> None:
    """After five failed logins within a minute from one address, the
    sixth try gets 429 with Retry-After, and no hash is computed for it,
    not even for the right password, until the minute has passed."""
    clock = Monotonic()
    access = throttled(clock)
    for second in range(5):
        clock.now = 1000.0 + second
        assert login(access, '192.0.2.1', 'no') == 401
    assert hashes.calls == 5
    clock.now = 1010.0
    for password in ('no', 'pw'):
        denied = access.denied(request('192.0.2.1', headers=basic(
            'ops', password)))
        assert denied == (429, 'Too many failed logins from your address: '
                          'try again in 50 s.', 50)
    assert hashes.calls == 5
    assert login(access, '192.0.2.2', 'pw') == 200  # not locked out
    assert hashes.calls == 6
    # the first failure ages out at 1060: one more try, then 429 again
    clock.now = 1059.5
    denied = access.denied(request('192.0.2.1', headers=basic('ops', 'pw')))
    assert denied is not None and denied.retry_after == 1
    clock.now = 1060.0
    assert login(access, '192.0.2.1', 'pw') == 200
    assert login(access, '192.0.2.1', 'no') == 401
    assert login(access, '192.0.2.1', 'pw') == 429
    clock.now = 1065.0  # all five failures are a minute old
    assert login(access, '192.0.2.1', 'pw') == 200


def test_a_success_does_not_wipe_out_failures(hashes: Counting) -> None:
    """A right login counts nothing, but does not clear the failures
    before it: four failures, a success, one failure, then 429."""
    clock = Monotonic()
    access = throttled(clock)
    assert [login(access, '192.0.2.1', 'no') for _ in range(4)] == [401] * 4
    assert [login(access, '192.0.2.1', 'pw') for _ in range(3)] == [200] * 3
    assert login(access, '192.0.2.1', 'no') == 401
    assert login(access, '192.0.2.1', 'pw') == 429


def test_a_request_without_credentials_is_not_a_try(
        hashes: Counting) -> None:
    """Being asked to log in (no Authorization) counts nothing; a client
    over the limit is told 429 even so."""
    clock = Monotonic()
    access = throttled(clock)
    assert [login(access, '192.0.2.1', None) for _ in range(10)] == [
        401] * 10
    assert hashes.calls == 0
    assert [login(access, '192.0.2.1', 'no') for _ in range(5)] == [401] * 5
    assert login(access, '192.0.2.1', None) == 429


@pytest.mark.parametrize('first, same, other, proxies', [
    ('2001:db8::1', '2001:db8::ffff:1', '2001:db8:0:1::1', ()),
    ('10.0.0.2', '10.0.0.2', '192.0.2.9', ()),  # untrusted: its peer
    ('203.0.113.9', '203.0.113.9', '203.0.113.10', ('10.0.0.2',)),
], ids=['ipv6-per-64', 'spoofing-peer', 'behind-proxy'])
def test_failures_count_per_client_address(
        hashes: Counting, first: str, same: str, other: str,
        proxies: tuple[str, ...]) -> None:
    """Failures count against the address the access rule computes (an
    IPv6 client's /64; behind a trusted proxy its X-Forwarded-For; a peer
    that forges forwarding headers is counted as itself)."""
    clock = Monotonic()
    access = throttled(clock, trusted_proxies=proxies)

    def attempt(address: str, password: str) -> int:
        if proxies:
            req = request(proxies[0], headers={
                'X-Forwarded-For': address, **basic('ops', password)})
        elif address == '10.0.0.2':  # forges a new client each time
            req = request(address, headers={
                'X-Forwarded-For': f'127.0.0.{hashes.calls}',
                **basic('ops', password)})
        else:
            req = request(address, headers=basic('ops', password))
        denied = access.denied(req)
        return 200 if denied is None else denied.status

    assert [attempt(first, 'no') for _ in range(5)] == [401] * 5
    assert attempt(same, 'pw') == 429
    assert attempt(other, 'pw') == 200


def test_throttle_counts_a_try_as_it_starts() -> None:
    """Tries are counted before the password is checked: concurrent
    requests cannot all slip past the limit; a success gives its try
    back."""
    clock = Monotonic()
    throttle = LoginThrottle(limit=3, window=10, clock=clock)
    assert [throttle.attempt('a') for _ in range(4)] == [0, 0, 0, 10]
    throttle.succeeded('a')
    assert throttle.attempt('a') == 0 and throttle.wait('a') == 10
    clock.now += 4
    assert throttle.wait('a') == 6 and throttle.wait('b') == 0


def test_throttle_memory_is_bounded() -> None:
    """Many addresses cannot grow the throttle beyond max_clients: the
    client whose last try is oldest is forgotten first, and clients whose
    failures no longer count are dropped."""
    clock = Monotonic()
    throttle = LoginThrottle(limit=2, window=60, max_clients=100,
                             clock=clock)
    for number in range(10_000):
        throttle.attempt(f'client {number}')
        throttle.attempt(f'client {number}')
    assert len(throttle) == 100
    assert throttle.wait('client 9999') == 60
    assert throttle.wait('client 9899') == 0  # forgotten
    assert throttle.wait('client 9900') == 60
    clock.now += 61
    throttle.attempt('late')
    assert len(throttle) == 1
    assert repr(throttle) == '<LoginThrottle 2 per 60 s, 1 client(s)>'


def test_throttle_settings_are_checked() -> None:
    """A throttle that could never let anyone in fails at construction."""
    for options in ({'limit': 0}, {'window': 0}, {'max_clients': 0}):
        with pytest.raises(ValueError):
            LoginThrottle(**options)


def test_locking_out_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """The failure that reaches the limit is logged with the address, once."""
    access = throttled(Monotonic())
    with caplog.at_level(logging.WARNING, logger='onecron.web.access'):
        for _ in range(7):
            login(access, '192.0.2.1', 'no')
    [record] = caplog.records
    assert record.getMessage() == ('status page: 5 failed logins within '
                                   '60 s from 192.0.2.1: refused until '
                                   'they are older')


# --- over HTTP: a reverse proxy in front of a real server -------------------

#: headers a proxy does not pass on
_HOP_BY_HOP = {'connection', 'keep-alive', 'transfer-encoding', 'te',
               'trailer', 'upgrade', 'proxy-authorization',
               'proxy-connection'}


class ForwardingProxy:
    """A reverse proxy on 127.0.0.1 as nginx's bare ``proxy_pass`` is: it
    passes each request on to ``port`` and adds no X-Forwarded-For, unless
    told to (``forward=True``: ``$proxy_add_x_forwarded_for``)."""

    def __init__(self, port: int, forward: bool = False) -> None:
        self.port = port
        self.forward = forward

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        headers = {key[5:].replace('_', '-').title(): value
                   for key, value in environ.items()
                   if key.startswith('HTTP_')}
        headers = {key: value for key, value in headers.items()
                   if key.lower() not in _HOP_BY_HOP}
        if environ.get('CONTENT_TYPE'):
            headers['Content-Type'] = environ['CONTENT_TYPE']
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = environ['wsgi.input'].read(length) if length else None
        if self.forward:
            seen = headers.get('X-Forwarded-For')
            client = environ['REMOTE_ADDR']
            headers['X-Forwarded-For'] = (f'{seen}, {client}' if seen
                                          else client)
        path = quote(environ['PATH_INFO'].encode('latin-1'), safe='/')
        query = environ.get('QUERY_STRING')
        connection = http.client.HTTPConnection('127.0.0.1', self.port,
                                                timeout=10)
        try:
            connection.request(environ['REQUEST_METHOD'],
                               f'{path}?{query}' if query else path,
                               body=body, headers=headers)
            answer = connection.getresponse()
            content = answer.read()
        finally:
            connection.close()
        start_response(f'{answer.status} {answer.reason}', [
            (name, value) for name, value in answer.getheaders()
            if name.lower() not in _HOP_BY_HOP | {'content-length'}])
        return [content]


def fetch(port: int, path: str, method: str = 'GET',
          headers: dict[str, str] | None = None,
          body: bytes | None = None) -> tuple[int, dict[str, str], str]:
    """One request to 127.0.0.1:``port``: status, headers, text."""
    connection = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        answer = connection.getresponse()
        return (answer.status, dict(answer.getheaders()),
                answer.read().decode('utf-8'))
    finally:
        connection.close()


#: waitress drops forwarding headers unless told to trust a proxy itself;
#: here onecron's trusted_proxies does the trusting
KEEP_HEADERS = {'clear_untrusted_proxy_headers': False}


def proxied_app(tmp_path: Path, runs: list[str], **options: Any) -> CronApp:
    app = CronApp(secret=SECRET, enabled=False, store=str(tmp_path / 'runs'),
                  lock_dir=str(tmp_path), base_url='http://example.org',
                  trusted_proxies=['127.0.0.1'], **options)
    app.cronjob(minute=0, name='job')(lambda request: runs.append('ran'))
    return app


def test_a_proxy_that_names_no_client_opens_nothing(
        tmp_path: Path, live_server: Callable[..., LiveServer]) -> None:
    """Behind a trusted proxy on 127.0.0.1 that sends no X-Forwarded-For
    (nginx's bare proxy_pass), a visitor gets 403 from the status page:
    no page, no CSRF cookie, no control; nor can it call the job URLs
    with job_access='loopback'."""
    runs: list[str] = []
    app = proxied_app(tmp_path, runs, job_access='loopback')
    backend = live_server(app, **KEEP_HEADERS)
    proxy = live_server(ForwardingProxy(backend.port), **KEEP_HEADERS)
    for port in (proxy.port, backend.port):  # the proxy, or as the proxy
        status, headers, text = fetch(port, '/cronjobs/')
        assert status == 403 and 'Set-Cookie' not in headers
        assert 'X-Forwarded-For' in text
        status, _, _ = fetch(port, '/cronjobs/control/disable', 'POST', {
            'Content-Type': 'application/x-www-form-urlencoded',
            'Cookie': f'{CSRF_COOKIE}={"a" * 43}'},
            b'job=job&application_id=default&csrf=' + b'0' * 64)
        assert status == 403
        job_path = app.url_for('job').removeprefix('http://example.org')
        assert fetch(port, job_path)[0] == 403
    assert app.store is not None
    assert app.store.job_settings('default') == {} and runs == []
    assert app.store.runs('default') == []


def test_a_proxy_that_names_its_client_is_believed(
        tmp_path: Path, live_server: Callable[..., LiveServer]) -> None:
    """A trusted proxy that appends the client's address to
    X-Forwarded-For lets a visitor on its machine in, and keeps out a
    remote one whatever X-Forwarded-For it sends itself."""
    runs: list[str] = []
    app = proxied_app(tmp_path, runs, job_access='loopback')
    backend = live_server(app, **KEEP_HEADERS)
    proxy = live_server(ForwardingProxy(backend.port, forward=True),
                        **KEEP_HEADERS)
    assert fetch(proxy.port, '/cronjobs/')[0] == 200
    job_path = app.url_for('job').removeprefix('http://example.org')
    assert fetch(proxy.port, job_path)[0] == 200 and runs == ['ran']
    # a remote visitor, as the next proxy out (trusted, on this machine)
    # would forward it: its own claim to be local is left of its address
    outer = {'X-Forwarded-For': '127.0.0.1, 203.0.113.9'}
    assert fetch(proxy.port, '/cronjobs/', headers=outer)[0] == 403
    assert fetch(proxy.port, job_path, headers=outer)[0] == 403
    assert runs == ['ran']


def test_throttling_over_http(tmp_path: Path,
                              live_server: Callable[..., LiveServer]) -> None:
    """On a real server behind a proxy, five wrong passwords from one
    client make the sixth try 429 with Retry-After, while another client
    logs in; after the minute the first client logs in too."""
    clock = Monotonic()
    app = proxied_app(tmp_path, [])
    page = StatusPage(app, access=Access(
        'any', user='ops', password_hash=CHEAP, secret=SECRET,
        trusted_proxies=['127.0.0.1'], throttle=LoginThrottle(clock=clock)))
    backend = live_server(page, **KEEP_HEADERS)
    proxy = live_server(ForwardingProxy(backend.port, forward=True),
                        **KEEP_HEADERS)

    def login(client: str, password: str) -> tuple[int, dict[str, str]]:
        status, headers, _ = fetch(proxy.port, '/cronjobs/', headers={
            'X-Forwarded-For': client, **basic('ops', password)})
        return status, headers

    for _ in range(5):
        assert login('203.0.113.9', 'wrong')[0] == 401
    clock.now += 15
    status, headers = login('203.0.113.9', 'pw')
    assert status == 429 and headers['Retry-After'] == '45'
    assert login('198.51.100.4', 'pw')[0] == 200
    clock.now += 45
    assert login('203.0.113.9', 'pw')[0] == 200


@pytest.mark.parametrize('proxies, warned', [
    (['127.0.0.1'], True), (['::1'], True), (['127.0.0.0/8'], True),
    (['10.0.0.1'], False), ([], False)])
def test_loopback_job_access_behind_a_local_proxy_is_warned_about(
        proxies: list[str], warned: bool,
        caplog: pytest.LogCaptureFixture) -> None:
    """job_access='loopback' with a local trusted proxy refuses the
    scheduler's direct calls: the CronApp says so when it is made."""
    from onecron import CronApp
    with caplog.at_level(logging.WARNING, logger='onecron'):
        CronApp(secret='an access test secret of 32+ chars',
                job_access='loopback', trusted_proxies=proxies)
    assert any('point base_url at it' in record.getMessage()
               for record in caplog.records) is warned
