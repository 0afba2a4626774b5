"""Audit (API.md "Audit")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from vault.api.models.types import Answer, Query

ACCESS_LOG_DEFAULT, ACCESS_LOG_MAX = 200, 1000


class AccessQuery(Query):
    limit: Annotated[int, msgspec.Meta(ge=1, le=ACCESS_LOG_MAX)] = ACCESS_LOG_DEFAULT
    before: (
        Annotated[int, msgspec.Meta(ge=0, le=10**18, description="next_before of the page before")]
        | None
    ) = None


class AccessEvent(Answer):
    at: datetime
    actor: str
    role: str
    action: str
    outcome: str
    item_id: str | None = None
    #: The privacy officer's stated reason for this access.
    reason: str | None = None


class AccessLog(Answer):
    events: list[AccessEvent]
    next_before: int | None


class Problem(Answer):
    seq: int
    problem: str
    message: str


class Verification(Answer):
    ok: bool
    events: int
    head: str
    problems: list[Problem]
