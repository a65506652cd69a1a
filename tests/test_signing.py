"""Job tokens, static and per occurrence: signed, rotatable, bounded in
time, and silent about why they fail."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from onecron.protocol.signing import (
    MAX_TOKEN_LENGTH,
    OCCURRENCE_SALT,
    TRIGGER_SALT,
    JobSigner,
    OccurrenceToken,
    secrets_list,
)


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


# --- occurrence tokens ------------------------------------------------------

AT = datetime(2024, 3, 31, 1, 30, tzinfo=timezone.utc)


def occurrence_token(signer: JobSigner, name: str = 'job',
                     application_id: str = 'app', at: datetime = AT,
                     issued: datetime = AT) -> str:
    return signer.occurrence_token(name, application_id, at, issued=issued)


def test_occurrence_round_trip() -> None:
    """An occurrence token gives back its job, id, occurrence and making,
    in UTC, the occurrence to the microsecond."""
    zurich = datetime(2024, 3, 31, 3, 30, 0, 123456,
                      tzinfo=ZoneInfo('Europe/Zurich'))
    token = JobSigner('s').occurrence_token(
        'pkg.job', 'tenant-1', zurich, issued=AT + timedelta(seconds=5.9))
    said = JobSigner('s').verify_occurrence(token)
    assert said == OccurrenceToken('pkg.job', 'tenant-1', zurich,
                                   AT + timedelta(seconds=5))
    assert said is not None and said.occurrence.tzinfo is timezone.utc
    assert all(c.isalnum() or c in '-_.' for c in token)


def test_occurrence_tokens_differ_per_occurrence_and_id() -> None:
    """Another occurrence, application id or job makes another token."""
    signer = JobSigner('s')
    tokens = {occurrence_token(signer),
              occurrence_token(signer, at=AT + timedelta(minutes=1)),
              occurrence_token(signer, application_id='other'),
              occurrence_token(signer, name='other')}
    assert len(tokens) == 4


def test_static_and_occurrence_tokens_are_not_interchangeable() -> None:
    """The salts differ: neither kind verifies as the other."""
    signer = JobSigner('s')
    assert signer.verify_occurrence(signer.token_for('job')) is None
    assert signer.name_for(occurrence_token(signer)) is None


def test_tampered_truncated_and_foreign_occurrence_tokens() -> None:
    """Any change to a token, or another secret, gives None."""
    signer = JobSigner('s')
    token = occurrence_token(signer)
    payload, signature = token.rsplit('.', 1)
    flipped = payload[:5] + ('A' if payload[5] != 'A' else 'B') + payload[6:]
    assert signer.verify_occurrence(token[:-1]) is None
    assert signer.verify_occurrence(flipped + '.' + signature) is None
    assert signer.verify_occurrence(payload + '.' + signature[::-1]) is None
    assert signer.verify_occurrence(occurrence_token(JobSigner('x'))) is None
    assert signer.verify_occurrence('x' * (MAX_TOKEN_LENGTH + 1)) is None


@pytest.mark.parametrize('payload', [
    'job', ['job', 'app', AT.isoformat()], ['job', 'app', 'noon', 1],
    ['job', 'app', '2024-03-31T01:30:00', 1],
    ['job', 'app', AT.isoformat(), True], ['job', 'app', AT.isoformat(), 1.5],
    ['job', 1, AT.isoformat(), 1], ['job', 'app', AT.isoformat(), 10 ** 20],
], ids=['name-only', 'three', 'bad-time', 'naive', 'bool-issued',
        'float-issued', 'int-id', 'huge-issued'])
def test_signed_payloads_of_the_wrong_shape_are_refused(
        payload: object) -> None:
    """A validly signed occurrence payload of another shape gives None."""
    from itsdangerous import URLSafeSerializer
    token = URLSafeSerializer('s', salt=OCCURRENCE_SALT).dumps(payload)
    assert JobSigner('s').verify_occurrence(token) is None


def test_occurrence_token_other_application_id() -> None:
    """The token says whose occurrence it is: another id is not it."""
    said = JobSigner('s').verify_occurrence(
        occurrence_token(JobSigner('s'), application_id='tenant-a'))
    assert said is not None and said.application_id == 'tenant-a'


def test_occurrence_rotation_and_retirement() -> None:
    """The first secret signs, every listed one verifies, and a removed
    secret's tokens are refused."""
    old = occurrence_token(JobSigner('old'))
    rotated = JobSigner(['new', 'old'])
    assert rotated.verify_occurrence(old) is not None
    assert occurrence_token(rotated) == occurrence_token(JobSigner('new'))
    assert JobSigner(['new']).verify_occurrence(old) is None


def test_naive_times_are_refused_when_signing() -> None:
    """Occurrence tokens are made from aware datetimes only."""
    with pytest.raises(ValueError, match='aware'):
        JobSigner('s').occurrence_token('job', 'app', AT.replace(tzinfo=None),
                                        issued=AT)


@pytest.mark.parametrize('seconds, valid', [
    (-300.001, False), (-300, True), (0, True), (300, True),
    (300.001, False), (-86400, False), (86400, False),
], ids=['just-before', 'first', 'on-time', 'last', 'just-after',
        'day-before', 'day-after'])
def test_window_edges(seconds: float, valid: bool) -> None:
    """A token is valid from window before its occurrence to window after,
    both edges included."""
    said = JobSigner('s').verify_occurrence(occurrence_token(JobSigner('s')))
    assert said is not None
    assert said.valid_at(AT + timedelta(seconds=seconds), 300) is valid


def test_window_counts_from_the_making_of_a_late_token() -> None:
    """A missed occurrence caught up an hour late is valid until window
    after the token was made, not after."""
    made = AT + timedelta(hours=1)
    said = JobSigner('s').verify_occurrence(
        occurrence_token(JobSigner('s'), issued=made))
    assert said is not None
    assert said.valid_at(made + timedelta(seconds=60), 60)
    assert not said.valid_at(made + timedelta(seconds=61), 60)
    assert not said.valid_at(AT - timedelta(seconds=61), 60)


# --- trigger tokens: one run outside the schedule, static URLs off ------

def test_trigger_round_trip_keeps_a_digest_of_the_key_only() -> None:
    signer = JobSigner('s')
    said = signer.verify_trigger(signer.trigger_token(
        'job', 'tenant-a', 'chain', 'k-123', due=AT + timedelta(seconds=0.9)))
    assert said is not None
    assert (said.name, said.application_id, said.trigger, said.due) == (
        'job', 'tenant-a', 'chain', AT)  # due to the second
    assert 'k-123' not in said.key_digest
    assert said.accepts('k-123')
    assert not said.accepts('k-124') and not said.accepts(None)


def test_trigger_tokens_are_not_the_other_kinds() -> None:
    signer = JobSigner('s')
    trigger = signer.trigger_token('job', 'app', 'soon', 'k', due=AT)
    assert signer.name_for(trigger) is None
    assert signer.verify_occurrence(trigger) is None
    assert signer.verify_trigger(signer.token_for('job')) is None
    assert signer.verify_trigger(occurrence_token(signer)) is None
    assert JobSigner('other').verify_trigger(trigger) is None
    assert signer.verify_trigger(trigger[:-2]) is None


@pytest.mark.parametrize('trigger, key, due, message', [
    ('scheduler', 'k', AT, 'trigger must be one of'),
    ('url', 'k', AT, 'trigger must be one of'),
    ('soon', '', AT, 'needs a run key'),
    ('soon', 'k', AT.replace(tzinfo=None), 'aware'),
])
def test_bad_trigger_tokens_are_refused_when_signing(
        trigger: str, key: str, due: datetime, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        JobSigner('s').trigger_token('job', 'app', trigger, key, due=due)


@pytest.mark.parametrize('payload', [
    ['job', 'app', 'soon', 'digest'],
    ['job', 'app', 'scheduler', 'digest', 1],
    ['job', 'app', ['soon'], 'digest', 1],
    ['job', 'app', 'soon', 7, 1],
    ['job', 'app', 'soon', 'digest', True],
    ['job', 'app', 'soon', 'digest', 10 ** 20],
], ids=['four', 'scheduler', 'list-trigger', 'int-digest', 'bool-due',
        'huge-due'])
def test_signed_trigger_payloads_of_the_wrong_shape_are_refused(
        payload: object) -> None:
    from itsdangerous import URLSafeSerializer
    token = URLSafeSerializer('s', salt=TRIGGER_SALT).dumps(payload)
    assert JobSigner('s').verify_trigger(token) is None


def test_trigger_window_is_around_when_the_call_was_due() -> None:
    signer = JobSigner('s')
    said = signer.verify_trigger(
        signer.trigger_token('job', 'app', 'soon', 'k', due=AT))
    assert said is not None
    assert said.valid_at(AT + timedelta(seconds=60), 60)
    assert said.valid_at(AT - timedelta(seconds=60), 60)
    assert not said.valid_at(AT + timedelta(seconds=61), 60)
    assert not said.valid_at(AT - timedelta(seconds=61), 60)


@pytest.mark.parametrize('secret, weak', [
    ('abc', True), ('change-me-in-production', True),
    ('long random string', True), ('a' * 64, True), ('ab' * 40, True),
    ('s3cr3t-but-only-23-char', True),
    ('kq0f8Zb1xP4mW9cT2rV7nY5hJ3sL6dGe', False),
    ('correct horse battery staple and more words', False),
])
def test_weak_secrets_are_warned_about(
        secret: str, weak: bool, caplog: pytest.LogCaptureFixture) -> None:
    """A placeholder, short or repetitive secret gets a WARNING naming
    ``secret`` and what a good one looks like, without showing it."""
    from onecron import CronApp
    with caplog.at_level(logging.WARNING, logger='onecron'):
        CronApp(secret=['kq0f8Zb1xP4mW9cT2rV7nY5hJ3sL6dGe', secret])
    warnings = [r.getMessage() for r in caplog.records
                if 'secret' in r.getMessage()]
    assert len(warnings) == weak
    for message in warnings:
        assert 'secret 2 of 2 is weak' in message
        assert 'token_urlsafe' in message and secret not in message
