"""Kubernetes: a ``Secret`` with the job URLs and a ``batch/v1`` CronJob
per job, as YAML (:func:`kubernetes`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Union

from onecron.cli.export.base import (
    Export,
    JobCall,
    _about,
    _one_line,
    _plan,
    _skipped_comments,
    dns_label,
    unique_names,
)
from onecron.cli.export.translation import cron_expression

Yaml = Union[str, int, bool, None, Sequence['Yaml'],  # noqa: UP007
             Mapping[str, 'Yaml']]  # a recursive alias needs Union

_NOT_PRINTABLE = re.compile('[\x7f-\x9f\ufeff\ufffe\uffff\u2028\u2029]')
_PLAIN_KEY = re.compile(r'[A-Za-z][A-Za-z0-9_./-]*')
# what YAML 1.1 reads as a bool or null when it is not quoted
_YAML_WORDS = frozenset({'y', 'n', 'yes', 'no', 'on', 'off', 'true', 'false',
                         'null'})


def yaml_string(text: str) -> str:
    """``text`` as a double-quoted YAML scalar, read back exactly."""
    quoted = json.dumps(text, ensure_ascii=False)
    return _NOT_PRINTABLE.sub(lambda m: f'\\u{ord(m[0]):04x}', quoted)


def _yaml_scalar(value: Yaml) -> str:
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if _PLAIN_KEY.fullmatch(value) and value.lower() not in _YAML_WORDS:
            return value
        return yaml_string(value)
    return '{}' if isinstance(value, Mapping) else '[]'


def _yaml_lines(value: Yaml, indent: int = 0) -> list[str]:
    """Block-style YAML for nested mappings, sequences and scalars."""
    pad = ' ' * indent
    lines: list[str] = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            name = _yaml_scalar(key)
            if isinstance(item, (Mapping, list, tuple)) and item:
                lines.append(f'{pad}{name}:')
                lines += _yaml_lines(item, indent + 2)
            else:
                lines.append(f'{pad}{name}: {_yaml_scalar(item)}')
    elif isinstance(value, (list, tuple)):
        for item in value:
            if isinstance(item, (Mapping, list, tuple)) and item:
                nested = _yaml_lines(item, indent + 2)
                nested[0] = f'{pad}- {nested[0].lstrip()}'
                lines += nested
            else:
                lines.append(f'{pad}- {_yaml_scalar(item)}')
    else:
        lines.append(pad + _yaml_scalar(value))
    return lines


# the environment variable a CronJob's container finds its URL in
_URL_VARIABLE = 'ONECRON_URL'

# the container's shell script: printf is a shell builtin (dash, bash,
# BusyBox ash), so the URL reaches no process's arguments, and curl reads
# it as a config file on stdin
_CURL_FROM_ENV = ("printf 'url = \"%s\"\\n' \"${variable}\" | curl "
                  '--fail-with-body --silent --show-error --request POST '
                  '--max-time {max_time} --config -')


def kubernetes(jobs: Iterable[JobCall], *, source: str,
               image: str = 'curlimages/curl:8.10.1',
               starting_deadline: int = 300, history_limit: int = 3,
               backoff_limit: int = 0) -> Export:
    """A ``Secret`` with the job URLs and one ``batch/v1`` CronJob per
    scheduled job, as multi-document YAML.

    Each CronJob calls its job's URL with curl, failing on a non-2xx
    answer, in the job's zone (``spec.timeZone``, Kubernetes 1.27+), one
    at a time (``concurrencyPolicy: Forbid``). The URL is not in the spec:
    the container reads it from the Secret (one key per CronJob, named as
    it) into ``$ONECRON_URL`` and hands it to curl on stdin, so neither
    the CronJob nor the container's command line shows it. The Secret is
    named ``onecron-`` and ``source`` (the APP) as a DNS label, and comes
    first; ``source`` also goes in the header comment.
    """
    planned, skipped = _plan(
        jobs, lambda schedule: cron_expression(schedule,
                                               dialect='kubernetes'))
    names = unique_names([job.name for job, _ in planned], dns_label,
                         max_length=52)
    secret = unique_names([source], lambda text: f'onecron-{dns_label(text)}',
                          max_length=63)[source]
    parts = [f'# Kubernetes CronJobs for the onecron jobs of '
             f'{_one_line(source)}.\n'
             f'# The Secret {secret} holds their signed URLs: whoever can '
             f'read it can run the jobs.\n'
             + _skipped_comments(skipped)]
    labels = {'app.kubernetes.io/managed-by': 'onecron'}
    if planned:
        document: dict[str, Yaml] = {
            'apiVersion': 'v1',
            'kind': 'Secret',
            'metadata': {'name': secret, 'labels': labels},
            'type': 'Opaque',
            'stringData': {names[job.name]: url for job, url in planned},
        }
        parts.append('---\n# the URLs of the CronJobs below, one per key\n'
                     + '\n'.join(_yaml_lines(document)) + '\n')
    for job, _ in planned:
        assert job.schedule is not None
        expression, zone = cron_expression(job.schedule,
                                           dialect='kubernetes')
        script = _CURL_FROM_ENV.format(variable=_URL_VARIABLE,
                                       max_time=job.max_time)
        document = {
            'apiVersion': 'batch/v1',
            'kind': 'CronJob',
            'metadata': {'name': names[job.name], 'labels': labels,
                         'annotations': {'onecron/job': job.name}},
            'spec': {
                'schedule': expression,
                'timeZone': zone,
                'concurrencyPolicy': 'Forbid',
                'startingDeadlineSeconds': starting_deadline,
                'successfulJobsHistoryLimit': history_limit,
                'failedJobsHistoryLimit': history_limit,
                'jobTemplate': {'spec': {
                    'backoffLimit': backoff_limit,
                    'template': {
                        'metadata': {'labels': labels},
                        'spec': {
                            'restartPolicy': 'Never',
                            'containers': [{
                                'name': 'curl',
                                'image': image,
                                'command': ['sh', '-c', script],
                                'env': [{
                                    'name': _URL_VARIABLE,
                                    'valueFrom': {'secretKeyRef': {
                                        'name': secret,
                                        'key': names[job.name]}},
                                }],
                            }],
                        },
                    },
                }},
            },
        }
        parts.append(f'---\n# {_about(job)}\n'
                     + '\n'.join(_yaml_lines(document)) + '\n')
    return Export((('onecron-cronjobs.yaml', ''.join(parts)),),
                  tuple(skipped))
