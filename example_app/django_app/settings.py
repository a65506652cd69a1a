"""The whole Django configuration of the example."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY', 'change-me-in-production')
DEBUG = True
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
INSTALLED_APPS = ['example_app.django_app']
MIDDLEWARE: list[str] = []
ROOT_URLCONF = 'example_app.django_app.urls'
WSGI_APPLICATION = 'example_app.django_app.wsgi.application'
DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.environ.get('EXAMPLE_DJANGO_DB', 'example-django.sqlite'),
    },
}
DEFAULT_AUTO_FIELD = 'django.db.models.BigAutoField'
USE_TZ = True
TIME_ZONE = 'UTC'
# the jobs' and onecron's log lines on the console, under runserver too
LOGGING = {
    'version': 1,
    'disable_existing_loggers': False,
    'formatters': {'plain': {
        'format': '%(asctime)s %(levelname)-7s %(name)s: %(message)s'}},
    'handlers': {'console': {'class': 'logging.StreamHandler',
                             'formatter': 'plain'}},
    'root': {'handlers': ['console'], 'level': 'INFO'},
    # Django's own console handler would print its lines a second time
    'loggers': {'django': {'handlers': [], 'level': 'INFO'}},
}
