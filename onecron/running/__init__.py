"""Running jobs on time: the scheduler and what it stands on.

The scheduler loop and each application id's scheduler
(:mod:`~onecron.running.scheduler`, :mod:`~onecron.running.clockwork`),
what it does with each occurrence (:mod:`~onecron.running.runs`) and on
taking over (:mod:`~onecron.running.catchup`), the HTTP calls it makes
(:mod:`~onecron.running.caller`, :mod:`~onecron.running.pool`), the host
and job locks
(:mod:`~onecron.running.lock`), catching up after downtime
(:mod:`~onecron.running.misfire`), pruning old runs
(:mod:`~onecron.running.housekeeping`), when to start
(:mod:`~onecron.running.autostart`), and what a run leaves behind: its
captured output (:mod:`~onecron.running.output`) and its mail
(:mod:`~onecron.running.mail`).
"""
