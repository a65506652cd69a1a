"""The site itself: it knows nothing about cron jobs."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from .models import Visit


def index(request: HttpRequest) -> HttpResponse:
    Visit.objects.create(path=request.path, at=timezone.now())
    return HttpResponse(f'Hello from Django, visit '
                        f'{Visit.objects.count()}\n',
                        content_type='text/plain')
