"""Migrate the example's database, then serve it on 127.0.0.1:8080."""

from __future__ import annotations

from django.core.management import call_command

from onecron.django import get_cronapp

from ..serve import serve
from .wsgi import application

call_command('migrate', verbosity=0)
serve(application, get_cronapp())
