"""A URLconf that forgot onecron's URLs."""

from __future__ import annotations

from django.urls import path

from .urls import home

urlpatterns = [path('', home)]
