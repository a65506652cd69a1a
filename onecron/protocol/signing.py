"""Signed job tokens: the unguessable last segment of a job's URL.

Two kinds, signed with :mod:`itsdangerous` under different salts, so that
one is never taken for the other:

* the *static* token names the job and the application id (salt
  ``'cronjob-id'``, as in the model): the same in every process that
  shares the secret, valid for that id until the secret is retired (a
  token made without an id, as onecron made them at first, names the
  job alone and is valid only where the application id is fixed);
* an *occurrence* token (salt ``'cronjob-occurrence'``) names a job, an
  application id, one nominal occurrence and the moment it was made: the
  endpoint accepts it only near that occurrence (:meth:`OccurrenceToken.
  valid_at`) and, with a store, only once;
* a *trigger* token (salt ``'cronjob-trigger'``) is made by onecron itself
  for one run outside the schedule (run now, ``run_soon``, a ``then=``
  chain, ``onecron run``) when static URLs are off: it names a job, an
  application id, the trigger, a digest of the run's key and when the
  call is due, and the endpoint accepts it only near that moment and only
  from a caller that sends the key itself in the ``X-Onecron-Run`` header
  (a token is signed, not encrypted: the key must not be in it).

This is the only module that imports :mod:`itsdangerous`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from itsdangerous import BadData, URLSafeSerializer

#: a token longer than this is refused before any decoding is attempted
MAX_TOKEN_LENGTH = 1024

#: the salt of occurrence tokens: a static token is never one
OCCURRENCE_SALT = 'cronjob-occurrence'

#: the salt of trigger tokens: neither other kind is ever one
TRIGGER_SALT = 'cronjob-trigger'

#: the triggers a trigger token may stand for
TRIGGER_TOKEN_TRIGGERS = frozenset({'manual', 'chain', 'soon'})

#: verified tokens remembered (only valid ones: garbage cannot fill it
#: without the secret)
MAX_CACHED = 4096


def secrets_list(secret: str | Sequence[str]) -> list[str]:
    """Normalise the ``secret`` argument: a str or a non-empty list of str.

    The first entry signs, every entry verifies (key rotation: put the new
    secret first, drop the old one once no URL signed with it is in use).
    """
    if isinstance(secret, str):
        secrets = [secret]
    elif isinstance(secret, (list, tuple)):
        secrets = list(secret)
    else:
        raise TypeError(f'secret must be a str or a list of str, '
                        f'got {type(secret).__name__}')
    if not secrets:
        raise ValueError('secret must be a non-empty str or list of str')
    for entry in secrets:
        if not isinstance(entry, str) or not entry:
            raise ValueError(
                f'secret must be a non-empty str or list of str, '
                f'got {type(entry).__name__} {entry!r:.20}')
    return secrets


#: a secret shorter than this is guessable offline from one job URL
MIN_SECRET_LENGTH = 32

#: secrets copied from documentation and examples, in lower case
PLACEHOLDERS = frozenset({
    'secret', 'changeme', 'change-me', 'change me', 'change-me-in-production',
    'long random string', 'long-random-string', 'your-secret-key',
    'not-a-secret', 'development', 'dev', 'test', 'password', 'xxx',
})

#: what the weak-secret warning says a good secret looks like
GOOD_SECRET = ('a good one is 32 or more random characters, kept out of '
               'the code, e.g. python -c "import secrets; '
               'print(secrets.token_urlsafe(32))"')


def weak_secret(secret: str) -> str | None:
    """Why ``secret`` is weak (a placeholder, short, one repeated
    character), or None when nothing is found against it. A hint, not a
    proof of strength: randomness cannot be seen in one string."""
    if secret.strip().lower() in PLACEHOLDERS:
        return 'it is a placeholder from an example'
    if len(set(secret)) <= 2:
        return 'it repeats one or two characters'
    if len(secret) < MIN_SECRET_LENGTH:
        return (f'it has {len(secret)} characters, fewer than '
                f'{MIN_SECRET_LENGTH}')
    return None


class StaticToken(NamedTuple):
    """What a valid static token says."""

    #: the job's name
    name: str
    #: the application id it was made for; None for a token made before
    #: static tokens named one (valid only where the id is fixed)
    application_id: str | None


class OccurrenceToken(NamedTuple):
    """What a valid occurrence token says."""

    #: the job's name
    name: str
    #: the application id whose run it is
    application_id: str
    #: the nominal occurrence (before jitter), aware, UTC
    occurrence: datetime
    #: when the token was made, aware, UTC, to the second
    issued: datetime

    def valid_at(self, now: datetime, window: float) -> bool:
        """Whether the token may be used at ``now``.

        From ``window`` seconds before the earlier of its occurrence and
        its making to ``window`` seconds after the later: a regular call
        fires soon after both; a missed occurrence caught up later is made
        long after its occurrence, and so is valid until ``window`` after
        that.
        """
        slack = timedelta(seconds=window)
        return (min(self.occurrence, self.issued) - slack <= now
                <= max(self.occurrence, self.issued) + slack)


class TriggerToken(NamedTuple):
    """What a valid trigger token says."""

    #: the job's name
    name: str
    #: the application id whose run it is
    application_id: str
    #: who asked for the run: ``'manual'``, ``'chain'`` or ``'soon'``
    trigger: str
    #: the digest of the run's key (see :func:`key_digest`)
    key_digest: str
    #: when the call is due, aware, UTC, to the second
    due: datetime

    def valid_at(self, now: datetime, window: float) -> bool:
        """Whether the token may be used at ``now``: within ``window``
        seconds of when its call was due."""
        return abs((now - self.due).total_seconds()) <= window

    def accepts(self, key: str | None) -> bool:
        """Whether ``key`` (the call's ``X-Onecron-Run``) is the run's."""
        return key is not None and hmac.compare_digest(
            key_digest(key), self.key_digest)


def key_digest(key: str) -> str:
    """What a trigger token holds of a run key: it cannot be reversed."""
    return hashlib.sha256(key.encode('utf-8', 'surrogatepass')).hexdigest()


class JobSigner:
    """Turns job names into URL tokens and back."""

    def __init__(self, secret: str | Sequence[str]) -> None:
        # itsdangerous signs with the *last* key; our contract is the first
        keys = list(reversed(secrets_list(secret)))
        self._serializer = URLSafeSerializer(keys, salt='cronjob-id')
        self._occurrences = URLSafeSerializer(keys, salt=OCCURRENCE_SALT)
        self._triggers = URLSafeSerializer(keys, salt=TRIGGER_SALT)
        self._tokens: dict[tuple[str, str | None], str] = {}
        self._statics: dict[str, StaticToken] = {}

    def token_for(self, name: str, application_id: str | None = None
                  ) -> str:
        """The static token of the job called ``name`` for
        ``application_id``: valid for that id alone.

        Without an id, a token that names the job only, as onecron made
        them at first (see :class:`StaticToken`).
        """
        cache_key = (name, application_id)
        token = self._tokens.get(cache_key)
        if token is None:
            payload: str | list[str] = (
                name if application_id is None else [name, application_id])
            if len(self._tokens) >= MAX_CACHED:
                self._tokens.clear()
            token = self._tokens[cache_key] = str(
                self._serializer.dumps(payload))
        return token

    def verify_static(self, token: str) -> StaticToken | None:
        """What a static token says, or None if it is not valid.

        Bad, truncated, forged and foreign-secret tokens all give None: the
        caller answers 404 without saying which it was. A token made
        without an application id says None for it.
        """
        said = self._statics.get(token)
        if said is not None:
            return said
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            payload = self._serializer.loads(token)
        except (BadData, UnicodeError, ValueError):
            return None
        if isinstance(payload, str):
            said = StaticToken(payload, None)
        elif (isinstance(payload, list) and len(payload) == 2
                and all(isinstance(part, str) for part in payload)):
            said = StaticToken(payload[0], payload[1])
        else:
            return None
        # verifying costs tens of microseconds on every scheduled run; a
        # token once verified stays valid for this signer's lifetime
        if len(self._statics) >= MAX_CACHED:
            self._statics.clear()
        self._statics[token] = said
        return said

    def name_for(self, token: str) -> str | None:
        """The job name a static token was signed for, or None if it is
        not valid (whatever application id it names)."""
        said = self.verify_static(token)
        return None if said is None else said.name

    def occurrence_token(self, name: str, application_id: str,
                         occurrence: datetime, *, issued: datetime) -> str:
        """A token for the run of ``name`` at its nominal ``occurrence``
        for ``application_id``, made at ``issued``.

        Both times must be aware. The occurrence is kept to the
        microsecond (the run claims exactly it), the moment of making to
        the second.
        """
        if occurrence.tzinfo is None or issued.tzinfo is None:
            raise ValueError('occurrence and issued must be aware datetimes')
        return str(self._occurrences.dumps([
            name, application_id,
            occurrence.astimezone(timezone.utc).isoformat(),
            int(issued.timestamp())]))

    def verify_occurrence(self, token: str) -> OccurrenceToken | None:
        """What an occurrence token says, or None if it is not valid.

        Only the signature and the shape are checked here, not the time:
        see :meth:`OccurrenceToken.valid_at`. A static token, a token of a
        foreign or retired secret, a truncated or tampered one: None.
        """
        fields = _fields(self._occurrences, token, (str, str, str, int))
        if fields is None:
            return None
        name, application_id, occurrence, issued = fields
        made = _moment(issued)
        try:
            nominal = datetime.fromisoformat(occurrence)
        except ValueError:
            return None
        if made is None or nominal.tzinfo is None:
            return None
        return OccurrenceToken(name, application_id,
                               nominal.astimezone(timezone.utc), made)

    def trigger_token(self, name: str, application_id: str, trigger: str,
                      key: str, *, due: datetime) -> str:
        """A token for one run of ``name`` for ``application_id`` outside
        its schedule, asked for by ``trigger``, whose call carries ``key``
        and is due at ``due`` (aware)."""
        if trigger not in TRIGGER_TOKEN_TRIGGERS:
            raise ValueError(f'trigger must be one of '
                             f'{sorted(TRIGGER_TOKEN_TRIGGERS)}, '
                             f'got {trigger!r}')
        if not key:
            raise ValueError('a trigger token needs a run key')
        if due.tzinfo is None:
            raise ValueError('due must be an aware datetime')
        return str(self._triggers.dumps([
            name, application_id, trigger, key_digest(key),
            int(due.timestamp())]))

    def verify_trigger(self, token: str) -> TriggerToken | None:
        """What a trigger token says, or None if it is not valid (the
        signature and the shape only; see :meth:`TriggerToken.valid_at`)."""
        fields = _fields(self._triggers, token, (str, str, str, str, int))
        if fields is None:
            return None
        name, application_id, trigger, digest, due = fields
        moment = _moment(due)
        if trigger not in TRIGGER_TOKEN_TRIGGERS or moment is None:
            return None
        return TriggerToken(name, application_id, trigger, digest, moment)

    def __repr__(self) -> str:
        return f'<JobSigner with {len(self._serializer.secret_keys)} key(s)>'


def _fields(serializer: URLSafeSerializer, token: str,
            kinds: tuple[type, ...]) -> list[Any] | None:
    """The fields of a signed list payload, one of each of ``kinds`` (an
    int is never a bool), or None: bad signature, bad shape, too long."""
    if not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    try:
        payload = serializer.loads(token)
    except (BadData, UnicodeError, ValueError):
        return None
    if not (isinstance(payload, list) and len(payload) == len(kinds)):
        return None
    for value, kind in zip(payload, kinds):
        if not isinstance(value, kind) or (
                kind is int and isinstance(value, bool)):
            return None
    return payload


def _moment(seconds: int) -> datetime | None:
    """The aware UTC time ``seconds`` after the epoch, or None if out of
    range."""
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None
