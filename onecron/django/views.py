"""The view of the job URLs and the status page."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.common import no_append_slash
from django.views.decorators.csrf import csrf_exempt

from onecron.django import get_cronapp
from onecron.django.cron import DjangoCronApp


# the token (the status page: its own login and CSRF token) authenticates
# the scheduler's POST, which carries no Django CSRF token
@csrf_exempt  # type: ignore[untyped-decorator]
@no_append_slash  # type: ignore[untyped-decorator]
def serve(request: HttpRequest, path: str = '') -> HttpResponse:
    """Answer a job URL (run its job with ``request``) or the status
    page, as the CronApp does."""
    cron = get_cronapp()
    assert isinstance(cron, DjangoCronApp)
    return cron.respond(request)
