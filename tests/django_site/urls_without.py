"""A URLconf that forgot onecron's URLs."""

from __future__ import annotations

from .urls import home
from django.urls import path

urlpatterns = [path('', home)]
