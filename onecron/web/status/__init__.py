"""The status page and ``status.json``: what they show
(:mod:`~onecron.web.status.model`, read from the store), how it looks
(:mod:`~onecron.web.status.render`) and the requests they answer
(:mod:`~onecron.web.status.page`).
"""
