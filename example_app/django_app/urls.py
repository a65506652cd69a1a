"""The example's routes: the home page, and onecron's at its prefix."""

from __future__ import annotations

from django.urls import include, path

from .views import index

urlpatterns = [
    path('', index),
    # the job URLs and the status page, at ONECRON['PREFIX'] ('/cronjobs')
    path('cronjobs/', include('onecron.django.urls')),
]
