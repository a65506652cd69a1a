"""The whole Django configuration of the example."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get('DJANGO_SECRET_KEY',
                            'django-insecure-change-me-in-production')
DEBUG = True
ALLOWED_HOSTS = ['127.0.0.1', 'localhost']
# onecron.django builds the CronApp from ONECRON below and imports the jobs
# of every installed app's cronjobs.py
INSTALLED_APPS = ['onecron.django', 'example_app.django_app']
MIDDLEWARE: list[str] = []
ROOT_URLCONF = 'example_app.django_app.urls'
WSGI_APPLICATION = 'example_app.django_app.wsgi.application'
DATABASES = {
    'default': {
        'ENGINE': 'django.db.backends.sqlite3',
        'NAME': os.environ.get('EXAMPLE_DJANGO_DB', 'example-django.sqlite'),
    },
}
# CronApp's keywords, upper-cased; its secret is not SECRET_KEY
ONECRON = {
    'SECRET': os.environ.get('ONECRON_SECRET', 'change-me-in-production'),
    'APPLICATION_ID': 'django-example',
    'BASE_URL': os.environ.get('ONECRON_BASE_URL', 'http://127.0.0.1:8080'),
    'STORE': os.environ.get('ONECRON_STORE', 'example-runs.sqlite'),
    'LOCK_DIR': os.environ.get('ONECRON_LOCK_DIR'),
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
