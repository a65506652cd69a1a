"""A Django application for tests/test_django.py: its ``cronjobs.py`` is
found by onecron.django, its middleware marks the requests it sees."""
