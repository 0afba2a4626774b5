"""Reading the audit log: a child's access log, and the breach question."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import audit_events, audit_subjects


@dataclasses.dataclass(frozen=True)
class Access:
    seq: int
    at: datetime
    #: The person's id (their name is sealed: the caller opens it), or None
    #: for the vault's own jobs and operators.
    actor_id: str | None
    role: str
    action: str
    item_id: str | None
    outcome: str
    #: The id of the privacy officer's stated reason (vault/rights/reasons.py).
    reason_id: str | None = None


async def access_log(
    engine: AsyncEngine, child_id: str, *, limit: int, before: int | None = None
) -> list[Access]:
    """The events that touched the child, newest first (who by id: the API
    shows role and first name, never the full name, ids or addresses)."""
    where = [audit_subjects.c.child_id == child_id]
    if before is not None:
        where.append(audit_subjects.c.seq < before)
    query = (
        select(
            audit_events.c.seq,
            audit_events.c.at,
            audit_events.c.role,
            audit_events.c.action,
            audit_events.c.item,
            audit_events.c.outcome,
            audit_events.c.children,
            audit_events.c.actor,
            audit_events.c.detail,
        )
        .select_from(audit_subjects.join(audit_events, audit_events.c.seq == audit_subjects.c.seq))
        .where(and_(*where))
        .order_by(audit_subjects.c.seq.desc())
        .limit(limit)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        Access(
            seq=int(row.seq),
            at=row.at,
            actor_id=row.actor,
            role=row.role or "system",
            action=row.action,
            item_id=row.item,
            outcome=row.outcome,
            reason_id=_reason_id(row.detail),
        )
        for row in rows
        # The index only finds events; the event's own list (under the hash) decides.
        if child_id in json.loads(row.children)
    ]


def _reason_id(detail: str) -> str | None:
    if '"reason_id"' not in detail:  # most events: no parse
        return None
    value = json.loads(detail).get("reason_id")
    return value if isinstance(value, str) else None


@dataclasses.dataclass
class Touched:
    events: int = 0
    refused: int = 0
    first: datetime | None = None
    last: datetime | None = None
    children: dict[str, int] = dataclasses.field(default_factory=dict)
    items: dict[str, int] = dataclasses.field(default_factory=dict)
    actions: dict[str, int] = dataclasses.field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat().replace("+00:00", "Z") if moment else None

        return {
            "events": self.events,
            "refused": self.refused,
            "first": iso(self.first),
            "last": iso(self.last),
            "children": dict(sorted(self.children.items())),
            "items": dict(sorted(self.items.items())),
            "actions": dict(sorted(self.actions.items())),
        }


async def touched(
    engine: AsyncEngine,
    *,
    person: str | None = None,
    token: str | None = None,
    since: datetime,
    until: datetime,
) -> Touched:
    """Which children and records an account (or one token) touched in [since, until).

    Refused attempts are counted apart and do not add children or records:
    nothing was handed out.
    """
    if (person is None) == (token is None):
        raise ValueError("name either a person or a token")
    column = audit_events.c.actor if person is not None else audit_events.c.token
    query = select(
        audit_events.c.at,
        audit_events.c.action,
        audit_events.c.outcome,
        audit_events.c.children,
        audit_events.c.item,
    ).where(column == (person or token), audit_events.c.at >= since, audit_events.c.at < until)
    answer = Touched()
    async with engine.connect() as conn:
        stream = await conn.stream(query)
        async for rows in stream.partitions(5000):
            for row in rows:
                answer.events += 1
                answer.first = row.at if answer.first is None else min(answer.first, row.at)
                answer.last = row.at if answer.last is None else max(answer.last, row.at)
                answer.actions[row.action] = answer.actions.get(row.action, 0) + 1
                if row.outcome != "ok":
                    answer.refused += 1
                    continue
                for child in json.loads(row.children):
                    answer.children[child] = answer.children.get(child, 0) + 1
                if row.item:
                    answer.items[row.item] = answer.items.get(row.item, 0) + 1
    return answer


@dataclasses.dataclass
class Summary:
    """How many events, since when, and by which role (a report's ``access``)."""

    events: int = 0
    since: datetime | None = None
    by_role: dict[str, int] = dataclasses.field(default_factory=dict)

    def add(self, at: datetime, role: str | None) -> None:
        self.events += 1
        self.since = at if self.since is None else min(self.since, at)
        name = role or "system"
        self.by_role[name] = self.by_role.get(name, 0) + 1


async def child_summary(engine: AsyncEngine, child_id: str) -> Summary:
    """Every event that touched the child (refusals too), counted by role."""
    query = (
        select(audit_events.c.at, audit_events.c.role, audit_events.c.children)
        .select_from(audit_subjects.join(audit_events, audit_events.c.seq == audit_subjects.c.seq))
        .where(audit_subjects.c.child_id == child_id)
    )
    answer = Summary()
    async with engine.connect() as conn:
        stream = await conn.stream(query)
        async for rows in stream.partitions(5000):
            for row in rows:
                # The index only finds events; the event's own list decides.
                if child_id in json.loads(row.children):
                    answer.add(row.at, row.role)
    return answer


async def person_summary(engine: AsyncEngine, person_id: str) -> Summary:
    """Every event of the person's own calls (a person's report)."""
    query = select(audit_events.c.at, audit_events.c.role).where(audit_events.c.actor == person_id)
    answer = Summary()
    async with engine.connect() as conn:
        stream = await conn.stream(query)
        async for rows in stream.partitions(5000):
            for row in rows:
                answer.add(row.at, row.role)
    return answer
