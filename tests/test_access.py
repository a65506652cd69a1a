"""Who may use the status page: addresses, proxies, basic auth, CSRF."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable

import pytest
from webob import Request, Response

from onecron.access import (CSRF_COOKIE, Access, check_password_hash,
                            hash_password, verify_password)

SECRET = 'csrf test secret'
HASH = hash_password('correct horse')


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
    (('10.0.0.2',), '10.0.0.2', None, '10.0.0.2'),
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
    proxy: the right-most address that is not a trusted proxy."""
    headers = {} if forwarded is None else {'X-Forwarded-For': forwarded}
    access = Access(trusted_proxies=proxies, secret=SECRET)
    assert access.client_address(request(remote_addr,
                                         headers=headers)) == client


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

    with caplog.at_level(logging.ERROR, logger='onecron.access'):
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
], ids=['right', 'missing', 'wrong-password', 'wrong-user', 'empty-password',
        'bad-base64', 'bad-utf8', 'no-colon', 'other-scheme'])
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
