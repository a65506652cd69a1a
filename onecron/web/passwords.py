"""The status page's basic auth passwords: their hashes
(:func:`hash_password`, :func:`verify_password`) and the throttle on
failed logins per client (:class:`LoginThrottle`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

# scrypt costs (RFC 7914 "interactive"): ~16 MiB and some 50 ms per check
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2 ** 14, 8, 1
_PBKDF2_MIN_ITERATIONS = 100_000


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
