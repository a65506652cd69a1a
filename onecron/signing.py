"""Signed job tokens: the unguessable last segment of a job's URL.

The token is the job name signed with :mod:`itsdangerous` (salt
``'cronjob-id'``, as in the model), so it is the same in every process that
shares the secret and cannot be forged without it. This is the only module
that imports :mod:`itsdangerous`.
"""

from __future__ import annotations

from collections.abc import Sequence

from itsdangerous import BadData, URLSafeSerializer

#: a token longer than this is refused before any decoding is attempted
MAX_TOKEN_LENGTH = 1024

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


class JobSigner:
    """Turns job names into URL tokens and back."""

    def __init__(self, secret: str | Sequence[str]) -> None:
        # itsdangerous signs with the *last* key; our contract is the first
        keys = list(reversed(secrets_list(secret)))
        self._serializer = URLSafeSerializer(keys, salt='cronjob-id')
        self._tokens: dict[str, str] = {}
        self._names: dict[str, str] = {}

    def token_for(self, name: str) -> str:
        """The token of the job called ``name``."""
        token = self._tokens.get(name)
        if token is None:
            token = self._tokens[name] = str(self._serializer.dumps(name))
        return token

    def name_for(self, token: str) -> str | None:
        """The job name a token was signed for, or None if it is not valid.

        Bad, truncated, forged and foreign-secret tokens all give None: the
        caller answers 404 without saying which it was.
        """
        name = self._names.get(token)
        if name is not None:
            return name
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        try:
            name = self._serializer.loads(token)
        except (BadData, UnicodeError, ValueError):
            return None
        if not isinstance(name, str):
            return None
        # verifying costs tens of microseconds on every scheduled run; a
        # token once verified stays valid for this signer's lifetime
        if len(self._names) >= MAX_CACHED:
            self._names.clear()
        self._names[token] = name
        return name

    def __repr__(self) -> str:
        return f'<JobSigner with {len(self._serializer.secret_keys)} key(s)>'
