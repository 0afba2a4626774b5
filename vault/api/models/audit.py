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


#: The longest window the breach question may span (a year, and a leap day).
TOUCHED_MAX_DAYS = 366
_MOMENT_HINT = (
    "a timestamp with its time zone, like 2026-11-21T10:00:00Z "
    "(in a URL a '+' of the zone is written %2B)"
)
Moment = Annotated[datetime, msgspec.Meta(tz=True, extra={"hint": _MOMENT_HINT})]


class TouchedQuery(Query, kw_only=True):
    """``person`` or ``token`` (exactly one), and the window [since, until)."""

    person: (
        Annotated[
            str,
            msgspec.Meta(
                pattern="^[0-9a-f]{32}$",
                description="a person's id",
                extra={"hint": "a person's id (32 characters 0-9 and a-f)"},
            ),
        ]
        | None
    ) = None
    token: (
        Annotated[
            str,
            msgspec.Meta(
                pattern="^[0-9a-f]{16}$",
                description="a token's id: the part after 'kl_' and before the dot",
                extra={
                    "hint": "a token's id (the 16 characters after 'kl_', before the dot; "
                    "never the whole token)"
                },
            ),
        ]
        | None
    ) = None
    since: Annotated[Moment, msgspec.Meta(description="from this moment (included)")]
    until: Annotated[Moment, msgspec.Meta(description="to this moment (not included)")]


class Touched(Answer, kw_only=True):
    """What one account or token touched in [since, until), from the audit log
    (the same figures as ``kluis audit touched``): ids and counts, no names."""

    person: str | None = None
    token: str | None = None
    since: datetime
    until: datetime
    #: Whether the directory knows the person or token now (the log outlives both).
    known: bool
    events: int
    refused: int
    first: datetime | None
    last: datetime | None
    #: Child id: how many of the calls that were let through touched it.
    children: dict[str, int]
    #: Record id: how many of the calls that were let through touched it.
    items: dict[str, int]
    #: Record id: its kind (``photo``, ``diary``, ...), from the records table.
    kinds: dict[str, str]
    #: Audit action name: how many calls (refused ones too).
    actions: dict[str, int]
