"""A middleware that marks every request it sees, and its response."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse


def mark(get_response: Callable[[HttpRequest], HttpResponse]
         ) -> Callable[[HttpRequest], HttpResponse]:
    def middleware(request: HttpRequest) -> HttpResponse:
        request.marked_by_middleware = True
        response = get_response(request)
        response['X-Marked'] = 'yes'
        return response
    return middleware
