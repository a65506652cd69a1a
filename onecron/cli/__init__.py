"""The ``onecron`` command: look at, run and export an application's jobs.

:mod:`~onecron.cli.program` runs a command line (:func:`main`,
:func:`run_command`), which :mod:`~onecron.cli.parser` reads into one of
the :mod:`~onecron.cli.commands`; :mod:`~onecron.cli.loading` finds the
application and its jobs, :mod:`~onecron.cli.printing` prints tables and
times, :mod:`~onecron.cli.errors` holds what a command reports when it
fails. :mod:`~onecron.cli.export` writes jobs as Kubernetes CronJobs,
systemd timers or crontab lines.
"""

from onecron.cli.errors import CommandError as CommandError
from onecron.cli.errors import UsageError as UsageError
from onecron.cli.loading import load as load
from onecron.cli.program import main as main
from onecron.cli.program import run_command as run_command

__all__ = ['CommandError', 'UsageError', 'load', 'main', 'run_command']
