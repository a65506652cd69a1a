"""Django with onecron.django: a one-settings project whose job, in
``cronjobs.py``, uses the ORM.

``python -m example_app.django_app`` migrates its SQLite database and
serves it with waitress; ``python -m example_app.django_app.manage
runserver 8080`` runs it under Django's autoreloader instead.
"""
