"""Schedules for other schedulers: Kubernetes CronJobs, systemd timers, cron.

A job's URL works for any caller, so a cluster or a host can run the jobs
instead of onecron's scheduler. This package translates a
:class:`~onecron.schedule.Schedule` into a 5-field cron expression
(:func:`cron_expression`) or systemd ``OnCalendar=`` values
(:func:`on_calendar`), in :mod:`~onecron.cli.export.translation`, and
renders those into text (:func:`kubernetes`, :func:`systemd`,
:func:`crontab`), one module per target:
:mod:`~onecron.cli.export.kubernetes_yaml`,
:mod:`~onecron.cli.export.systemd_units` and
:mod:`~onecron.cli.export.crontab_lines`; :mod:`~onecron.cli.export.base`
holds what they share. All that is pure: no clock, no I/O, no
application; the command line (:mod:`onecron.cli`) collects the jobs and
writes the text (:mod:`~onecron.cli.export.private_files`).

A job's URL is its key, so no rendered command line holds one: a
command line is readable by every local user (``/proc/*/cmdline``) and a
CronJob spec by anyone allowed to view it. systemd and cron run
``curl -K FILE`` on a curl config file holding the URL
(:func:`curl_config`), which :attr:`Export.configs` gives for the caller to
write privately; a Kubernetes CronJob takes its URL from a ``Secret``
into an environment variable, which its shell hands to curl on stdin.

What cannot be translated raises
:class:`~onecron.errors.UntranslatableSchedule` and the renderers skip that
job with a comment saying why: seconds, or the Quartz ``L``, ``W`` and
``#`` days, in cron (``W`` anywhere), intervals that do not divide a day,
and day/weekday combinations a target reads differently. Intervals count
from the Unix epoch, so they are exported in UTC whatever the job's zone.
External schedulers fire at the nominal time (no jitter) and follow their
own rules across DST changes.
"""

from __future__ import annotations

from onecron.cli.export.base import Export as Export
from onecron.cli.export.base import JobCall as JobCall
from onecron.cli.export.base import Skipped as Skipped
from onecron.cli.export.base import curl_config as curl_config
from onecron.cli.export.base import dns_label as dns_label
from onecron.cli.export.base import unique_names as unique_names
from onecron.cli.export.crontab_lines import crontab as crontab
from onecron.cli.export.crontab_lines import (
    crontab_command as crontab_command,
)
from onecron.cli.export.crontab_lines import (
    crontab_config_command as crontab_config_command,
)
from onecron.cli.export.kubernetes_yaml import kubernetes as kubernetes
from onecron.cli.export.kubernetes_yaml import yaml_string as yaml_string
from onecron.cli.export.systemd_units import systemd as systemd
from onecron.cli.export.systemd_units import systemd_word as systemd_word
from onecron.cli.export.translation import Dialect as Dialect
from onecron.cli.export.translation import cron_expression as cron_expression
from onecron.cli.export.translation import on_calendar as on_calendar

__all__ = ['Dialect', 'Export', 'JobCall', 'Skipped', 'cron_expression',
           'crontab', 'crontab_command', 'crontab_config_command',
           'curl_config', 'dns_label', 'kubernetes', 'on_calendar',
           'systemd', 'systemd_word', 'unique_names', 'yaml_string']
