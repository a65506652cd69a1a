"""A small WSGI application with cron jobs, as a onecron user writes it."""
