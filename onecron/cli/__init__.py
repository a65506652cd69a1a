"""The ``onecron`` command: look at, run and export an application's jobs.

:mod:`~onecron.cli.commands` holds the commands and :func:`main`;
:mod:`~onecron.cli.export` writes jobs as Kubernetes CronJobs, systemd
timers or crontab lines.
"""

from onecron.cli.commands import CommandError as CommandError
from onecron.cli.commands import UsageError as UsageError
from onecron.cli.commands import load as load
from onecron.cli.commands import main as main
from onecron.cli.commands import run_command as run_command

__all__ = ['CommandError', 'UsageError', 'load', 'main', 'run_command']
