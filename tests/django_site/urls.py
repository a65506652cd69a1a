"""The test site: a home page, and onecron at its default prefix."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def home(request: HttpRequest) -> HttpResponse:
    return HttpResponse('home\n', content_type='text/plain')


urlpatterns = [
    path('', home),
    path('cronjobs/', include('onecron.django.urls')),
]
