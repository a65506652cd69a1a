"""What onecron answers over HTTP under its prefix.

:mod:`~onecron.web.router` hands each request to its part: the job
endpoint (:mod:`~onecron.web.endpoint`), the status page
(:mod:`~onecron.web.status`), ``/metrics`` (:mod:`~onecron.web.metrics`)
and the probes (:mod:`~onecron.web.probes`). The access rules they apply
are :mod:`~onecron.web.access`, with the client's address behind proxies
(:mod:`~onecron.web.addresses`) and the status page's passwords
(:mod:`~onecron.web.passwords`).
"""
