"""What every export shares: the jobs going in (:class:`JobCall`), what
comes out (:class:`Export`, :class:`Skipped`), the names of the files
and objects made for them, and the curl config files holding their URLs.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from onecron.errors import UntranslatableSchedule
from onecron.schedule.rules import Schedule

# -- names ------------------------------------------------------------------

def unique_names(names: Iterable[str], clean: Callable[[str], str], *,
                 max_length: int) -> dict[str, str]:
    """A distinct cleaned name for each of ``names``, at most ``max_length``.

    A name that had to be cut, or whose cleaned form another name shares,
    ends in ``-`` and six hex digits of its digest, so the result stays
    the same as long as the set of colliding names does.
    """
    cleaned = {name: clean(name) for name in names}
    counts: dict[str, int] = {}
    for text in cleaned.values():
        counts[text] = counts.get(text, 0) + 1
    result = {}
    for name, text in cleaned.items():
        if len(text) > max_length or counts[text] > 1:
            digest = hashlib.blake2b(name.encode('utf-8'),
                                     digest_size=3).hexdigest()
            head = text[:max_length - len(digest) - 1].rstrip('-.')
            text = f'{head}-{digest}' if head else digest
        result[name] = text
    if len(set(result.values())) < len(result):  # a digest collision
        raise ValueError(f'job names {sorted(result)} do not give distinct '
                         f'names')
    return result


def dns_label(name: str) -> str:
    """``name`` as an RFC 1123 label: lower case ``[a-z0-9-]``."""
    return re.sub('[^a-z0-9]+', '-', name.lower()).strip('-') or 'job'


def _unit_name(name: str) -> str:
    return re.sub('[^A-Za-z0-9_.-]+', '-', name).strip('-.') or 'job'



# -- the jobs and what became of them ----------------------------------------

@dataclass(frozen=True)
class JobCall:
    """What an external scheduler needs of one job."""

    name: str
    #: None for a manual-only job, which is skipped
    schedule: Schedule | None
    #: the signed URL; None for a manual-only job
    url: str | None
    #: curl's ``--max-time`` in seconds
    max_time: int


@dataclass(frozen=True)
class Skipped:
    """A job left out of an export, and why."""

    job: str
    reason: str
    #: whether the job has no schedule (rather than an untranslatable one)
    manual: bool = False


@dataclass(frozen=True)
class Export:
    """Generated files as (name, text), and the jobs left out.

    ``configs`` are the curl config files (name, text) that hold the job
    URLs the ``files`` refer to by path: the caller writes them, readable
    only by their owner, into the directory the renderer was given.
    """

    files: tuple[tuple[str, str], ...]
    skipped: tuple[Skipped, ...]
    configs: tuple[tuple[str, str], ...] = ()

    def text(self) -> str:
        """Everything in one text; several files under ``# file:`` lines."""
        if len(self.files) == 1:
            return self.files[0][1]
        head = _skipped_comments(self.skipped)
        return head + ''.join(f'# file: {name}\n{text}\n'
                              for name, text in self.files)


# what RFC 3986 lets a URL hold: no space, quote, backslash or control
# character, which would end or change the URL in a config file or a shell
_URL = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]+")


def _plan(jobs: Iterable[JobCall],
          translate: Callable[[Schedule], object]) -> tuple[
              list[tuple[JobCall, str]], list[Skipped]]:
    """Scheduled jobs with their URL; the others, skipped with a reason.

    :raises ValueError: for a URL with characters no URL may hold, naming
        the job (never the URL, which is its key)
    """
    planned: list[tuple[JobCall, str]] = []
    skipped: list[Skipped] = []
    for job in jobs:
        if job.schedule is None or job.url is None:
            skipped.append(Skipped(job.name, 'manual only: no schedule',
                                   manual=True))
            continue
        if not _URL.fullmatch(job.url):
            raise ValueError(
                f'the URL of job {job.name!r} holds a character no URL may '
                f'(a space, quote, backslash or control character): check '
                f'the base URL')
        try:
            translate(job.schedule)
        except UntranslatableSchedule as exc:
            skipped.append(Skipped(job.name, str(exc)))
            continue
        planned.append((job, job.url))
    return planned, skipped


def _one_line(text: str) -> str:
    """``text`` safe for a comment line of any of the formats."""
    return re.sub(r'[\x00-\x1f\x7f-\x9f\u2028\u2029]', '?', text)


def _skipped_comments(skipped: Iterable[Skipped]) -> str:
    return ''.join(f'# skipped {_one_line(item.job)}: '
                   f'{_one_line(item.reason)}\n' for item in skipped)


def _about(job: JobCall) -> str:
    assert job.schedule is not None
    return _one_line(f'{job.name}: {job.schedule.describe()} '
                     f'({job.schedule})')


def _config_name(name: str) -> str:
    """The curl config file of the job whose unit name is ``name``."""
    return f'onecron-{name}.curlrc'


def _check_config_dir(config_dir: str) -> None:
    if not posixpath.isabs(config_dir):
        raise ValueError(f'config_dir must be an absolute path (cron and '
                         f'systemd run curl elsewhere), got {config_dir!r}')
    if _one_line(config_dir) != config_dir:
        raise ValueError(f'config_dir must not hold control characters, got '
                         f'{config_dir!r}')


def curl_config(url: str, *, job: str | None = None) -> str:
    """A curl config file (``curl -K FILE``) that gives curl ``url``.

    The URL is double-quoted with curl's escapes (``\\\\`` and ``\\"``);
    ``job`` goes in a comment above it.
    """
    if _one_line(url) != url:
        raise ValueError('a URL in a curl config file must not hold control '
                         'characters')
    escaped = url.replace('\\', '\\\\').replace('"', '\\"')
    about = '' if job is None else f' of onecron job {_one_line(job)}'
    return (f'# The signed URL{about}: whoever can read this file can run '
            f'the job.\nurl = "{escaped}"\n')
