"""The contract between a job's caller and its endpoint.

How job URLs are signed (:mod:`~onecron.protocol.signing`), which hosts a
URL may name (:mod:`~onecron.protocol.hosts`) and the headers a call and
its answer carry (:mod:`~onecron.protocol.headers`): what the scheduler
and the outside callers send, and what the endpoint checks.
"""
