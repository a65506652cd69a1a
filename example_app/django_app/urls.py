"""The example's one route: the home page."""

from __future__ import annotations

from django.urls import path

from .views import index

urlpatterns = [path('', index)]
