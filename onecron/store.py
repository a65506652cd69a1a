"""The run store's records and interface, where they were first published.

Kept so that ``from onecron.store import ...`` goes on working: the store
now lives in the :mod:`onecron.stores` package.
"""

from __future__ import annotations

from onecron.stores import open_store as open_store
from onecron.stores.base import *  # noqa: F403
