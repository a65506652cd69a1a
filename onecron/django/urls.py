"""The job URLs and the status page: include them at ``ONECRON['PREFIX']``
(default ``'/cronjobs'``)::

    path('cronjobs/', include('onecron.django.urls'))
"""

from __future__ import annotations

from django.urls import path

from onecron.django.views import serve

app_name = 'onecron'
urlpatterns = [
    path('', serve, name='status'),
    path('<path:path>', serve, name='job'),
]
