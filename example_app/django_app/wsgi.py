"""The WSGI application: Django's own; onecron is one of its apps."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault('DJANGO_SETTINGS_MODULE',
                      'example_app.django_app.settings')
application = get_wsgi_application()
