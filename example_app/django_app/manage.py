"""Django's command line for the example: ``python -m
example_app.django_app.manage runserver 8080``."""

from __future__ import annotations

import os
import sys

from django.core.management import execute_from_command_line


def main() -> None:
    os.environ.setdefault('DJANGO_SETTINGS_MODULE',
                          'example_app.django_app.settings')
    execute_from_command_line(sys.argv)


if __name__ == '__main__':
    main()
