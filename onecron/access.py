"""The access rules, where they were first published.

Kept so that ``onecron.access.hash_password`` (which the README's
password recipe uses) and the other names go on working: the rules now
live in :mod:`onecron.web.access`.
"""

from __future__ import annotations

from onecron.web.access import *  # noqa: F403
from onecron.web.access import hash_password as hash_password
from onecron.web.access import verify_password as verify_password
