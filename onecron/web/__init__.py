"""What onecron answers over HTTP: the job endpoint, the status page and
the access rules both apply (:mod:`~onecron.web.endpoint`,
:mod:`~onecron.web.status`, :mod:`~onecron.web.access`).
"""
