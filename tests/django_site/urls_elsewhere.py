"""onecron's URLs included at another path than ONECRON['PREFIX']."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [path('jobs/', include('onecron.django.urls'))]
