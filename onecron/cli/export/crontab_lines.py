"""cron: crontab lines grouped by ``CRON_TZ=`` zone (:func:`crontab`)."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from onecron.cli.export.base import (
    Export,
    JobCall,
    _about,
    _check_config_dir,
    _config_name,
    _one_line,
    _plan,
    _skipped_comments,
    _unit_name,
    curl_config,
    unique_names,
)
from onecron.cli.export.translation import cron_expression


def _cron_quoted(text: str) -> str:
    """``text`` single-quoted for sh, ``%`` escaped (cron ends the command
    at an unescaped ``%``)."""
    quoted = "'" + text.replace("'", "'\"'\"'") + "'"
    return quoted.replace('%', '\\%')


def crontab_command(url: str, max_time: int) -> str:
    """The curl command of a crontab line calling ``url``: URL
    single-quoted, ``%`` escaped (cron ends the command at an unescaped
    ``%``).

    This puts the URL on curl's command line, where every local user can
    read it; :func:`crontab` uses :func:`crontab_config_command` instead.
    """
    return (f'curl -fsS -X POST --max-time {max_time} {_cron_quoted(url)} '
            '>/dev/null')


def crontab_config_command(config: str, max_time: int) -> str:
    """The curl command of a crontab line that reads its URL from the curl
    config file ``config``: the path single-quoted, ``%`` escaped."""
    return (f'curl -fsS -X POST --max-time {max_time} '
            f'-K {_cron_quoted(config)} >/dev/null')


def crontab(jobs: Iterable[JobCall], *, source: str,
            config_dir: str) -> Export:
    """Crontab lines grouped by ``CRON_TZ=`` zone.

    Each line runs ``curl -K CONFIG``: the job's URL is in the curl config
    file ``onecron-NAME.curlrc`` in ``config_dir`` (an absolute path),
    given in :attr:`Export.configs`, never on the command line.

    ``CRON_TZ`` is read by cronie and most current crons, but not by
    Debian's cron, which uses the system's zone; it also applies to the
    lines after these, so keep them at the end of a crontab.

    :raises ValueError: for a relative ``config_dir``
    """
    _check_config_dir(config_dir)
    planned, skipped = _plan(jobs, cron_expression)
    names = unique_names([job.name for job, _ in planned], _unit_name,
                         max_length=200)
    by_zone: dict[str, list[str]] = {}
    configs: list[tuple[str, str]] = []
    for job, url in planned:
        assert job.schedule is not None
        expression, zone = cron_expression(job.schedule)
        config = posixpath.join(config_dir, _config_name(names[job.name]))
        configs.append((_config_name(names[job.name]),
                        curl_config(url, job=job.name)))
        by_zone.setdefault(zone, []).append(
            f'# {_about(job)}\n{expression} '
            f'{crontab_config_command(config, job.max_time)}\n')
    text = (f'# crontab lines for the onecron jobs of {_one_line(source)}.\n'
            f"# curl reads each job's signed URL from a file in "
            f'{_one_line(config_dir)}: whoever can read those files can run '
            f'the jobs.\n' + _skipped_comments(skipped)
            + ''.join(f'\nCRON_TZ={zone}\n' + ''.join(lines)
                      for zone, lines in sorted(by_zone.items())))
    return Export((('onecron.crontab', text),), tuple(skipped),
                  tuple(configs))
