"""The five roles of a store, each a protocol a consumer can type against.

A :class:`~onecron.stores.base.Store` plays all of them; a part of
onecron that only writes runs, or only renews leases, takes a
:class:`RunLog` or a :class:`Leases`, so that its signature says what it
uses of the store, and a test can hand it a small fake of that role
alone. The methods, their arguments and their rules are those of
:class:`~onecron.stores.base.Store` (see there). Every protocol is
``runtime_checkable``: ``isinstance(store, Leases)`` checks that the
methods are there (not their signatures).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from onecron.stores.records import (
    Hold,
    JobSettings,
    Lease,
    Outcome,
    Run,
    SchedulerInfo,
    Trigger,
)

if TYPE_CHECKING:
    from onecron.stores.base import Store


@runtime_checkable
class RunLog(Protocol):
    """The runs: written as they start, completed as they end, read back
    for the status page and the command line, pruned."""

    def start_run(self, application_id: str, job: str, *, trigger: Trigger,
                  started: datetime, scheduled: datetime | None = None,
                  key: str | None = None) -> int: ...

    def finish_run(self, run_id: int, *, ended: datetime, outcome: Outcome,
                   http_status: int | None = None, output: str = '',
                   error: str | None = None) -> None: ...

    def finish_run_by_key(self, key: str, *, application_id: str, job: str,
                          ended: datetime, outcome: Outcome,
                          http_status: int | None = None, output: str = '',
                          error: str | None = None) -> bool: ...

    def record_run(self, application_id: str, job: str, *, trigger: Trigger,
                   started: datetime, ended: datetime, outcome: Outcome,
                   scheduled: datetime | None = None,
                   http_status: int | None = None, output: str = '',
                   error: str | None = None, key: str | None = None,
                   ) -> int: ...

    def runs(self, application_id: str, job: str | None = None, *,
             limit: int = 50, before_id: int | None = None) -> list[Run]: ...

    def last_runs(self, application_id: str) -> dict[str, Run]: ...

    def get_run(self, run_id: int) -> Run | None: ...

    def prune(self, *, now: datetime, keep_runs: int | None = None,
              keep_days: float | None = None) -> int: ...


@runtime_checkable
class Claims(Protocol):
    """One run per occurrence of a job, whichever host asks."""

    #: whether hosts share the store, so that firing needs a claim
    coordinates: bool

    def claim(self, application_id: str, job: str, scheduled: datetime, *,
              key: str, now: datetime) -> bool: ...

    def claimed(self, application_id: str, job: str, since: datetime,
                until: datetime) -> set[datetime]: ...

    def unstarted_claims(self, application_id: str, job: str,
                         since: datetime, until: datetime, *,
                         claimed_before: datetime) -> dict[str, datetime]: ...


@runtime_checkable
class Leases(Protocol):
    """One active scheduler per application id, on all hosts."""

    def take_lease(self, application_id: str, *, holder: str, node: str,
                   ttl: float, now: datetime,
                   ) -> tuple[bool, Lease | None]: ...

    def renew_leases(self, application_ids: Iterable[str], *, holder: str,
                     node: str, ttl: float, now: datetime) -> set[str]: ...

    def release_lease(self, application_id: str, holder: str) -> None: ...

    def lease(self, application_id: str) -> Lease | None: ...


@runtime_checkable
class Switches(Protocol):
    """The operators' switches: jobs enabled or not, schedules overridden,
    whole application ids held."""

    def job_settings(self, application_id: str) -> dict[str, JobSettings]: ...

    def job_settings_of(self, application_ids: Iterable[str],
                        ) -> dict[str, dict[str, JobSettings]]: ...

    def set_enabled(self, application_id: str, job: str,
                    enabled: bool) -> None: ...

    def set_schedule(self, application_id: str, job: str,
                     schedule: str | None,
                     timezone: str | None = None) -> None: ...

    def hold(self, application_id: str) -> Hold: ...

    def holds_of(self, application_ids: Iterable[str]) -> dict[str, Hold]: ...

    def set_hold(self, application_id: str, held: bool, *,
                 now: datetime) -> Hold: ...


@runtime_checkable
class Heartbeats(Protocol):
    """The schedulers' signs of life, one per application id, host and
    process."""

    def heartbeat(self, info: SchedulerInfo) -> None: ...

    def heartbeats(self, infos: Iterable[SchedulerInfo]) -> None: ...

    def schedulers(self, application_id: str | None = None,
                   ) -> list[SchedulerInfo]: ...

    def forget_scheduler(self, application_id: str, host: str,
                         pid: int) -> None: ...


#: every role, by name
ROLES: tuple[type, ...] = (RunLog, Claims, Leases, Switches, Heartbeats)


if TYPE_CHECKING:
    def _plays_every_role(store: Store) -> tuple[
            RunLog, Claims, Leases, Switches, Heartbeats]:
        """Never called: the type checker checks that a store plays each
        role, with the signatures of the role."""
        return store, store, store, store, store
