"""Job tokens: signed, stable, rotatable, and silent about why they fail."""

from __future__ import annotations

import pytest

from onecron.signing import MAX_TOKEN_LENGTH, JobSigner, secrets_list


def test_round_trip() -> None:
    """A token gives back the name it was made for."""
    signer = JobSigner('s3cret')
    assert signer.name_for(signer.token_for('app.cleanup')) == 'app.cleanup'


def test_token_is_stable_across_signers() -> None:
    """Two signers with the same secret (two processes) agree on tokens."""
    assert JobSigner('a').token_for('job') == JobSigner('a').token_for('job')


def test_token_is_url_safe_and_hides_nothing_guessable() -> None:
    """The token has only URL-safe characters and differs per secret."""
    token = JobSigner('a').token_for('pkg.mod.fn <locals>/x')
    assert all(c.isalnum() or c in '-_.' for c in token)
    assert token != JobSigner('b').token_for('pkg.mod.fn <locals>/x')


def test_rotation_first_signs_all_verify() -> None:
    """With a list, the first secret signs and every secret verifies."""
    old = JobSigner('old').token_for('job')
    rotated = JobSigner(['new', 'old'])
    assert rotated.name_for(old) == 'job'
    assert rotated.token_for('job') == JobSigner('new').token_for('job')
    assert JobSigner(['new']).name_for(old) is None


@pytest.mark.parametrize('token', [
    '', 'x', 'not-a-token', 'a.b', '\u00e9\u00e9.\u00e9',
    'x' * (MAX_TOKEN_LENGTH + 1),
], ids=['empty', 'short', 'garbage', 'dotted', 'non-ascii', 'too-long'])
def test_bad_tokens_give_none(token: str) -> None:
    """Garbage of any kind is simply not a token."""
    assert JobSigner('s').name_for(token) is None


def test_truncated_forged_and_foreign_tokens_give_none() -> None:
    """Truncated, tampered and foreign-secret tokens are all refused."""
    signer = JobSigner('s')
    token = signer.token_for('job')
    payload, signature = token.rsplit('.', 1)
    assert signer.name_for(token[:-1]) is None
    assert signer.name_for(payload + '.' + signature[::-1]) is None
    assert signer.name_for(JobSigner('other').token_for('job')) is None


def test_non_string_payload_is_refused() -> None:
    """A validly signed payload that is not a name is not a job token."""
    from itsdangerous import URLSafeSerializer
    token = URLSafeSerializer('s', salt='cronjob-id').dumps([1, 2])
    assert JobSigner('s').name_for(token) is None


@pytest.mark.parametrize('secret', ['', [], [''], [1], None],
                         ids=['empty', 'empty-list', 'empty-entry',
                              'int-entry', 'none'])
def test_bad_secrets_are_refused(secret: object) -> None:
    """An empty or non-str secret is an error at construction."""
    with pytest.raises((ValueError, TypeError), match='secret'):
        secrets_list(secret)  # type: ignore[arg-type]
