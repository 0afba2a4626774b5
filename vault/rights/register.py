"""The register of requests of the people concerned (issue 19 item 3).

Access, rectification, erasure, restriction, objection and portability
requests, each due four weeks after it was received [003 §3.2]. A note
about a child is sealed under the child's profile key (and dies with it);
one about no child under the key of the person who filed it (category
``person``, vault/directory/sealing.py); the answer's note under the same
key as the request's. The register's rows name no one in clear.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import requests
from vault.directory.sealing import PERSON, PROFILE, Sealer
from vault.errors import Conflict, NotFound
from vault.tokens import new_id

#: How long the organisation has to answer.
TERM = timedelta(weeks=4)
TYPES = ("access", "rectification", "erasure", "restriction", "objection", "portability")
OUTCOMES = ("granted", "partly", "refused")


@dataclasses.dataclass(frozen=True)
class Request:
    id: str
    type: str
    child_id: str | None
    filed_by: str
    received_at: datetime
    due_at: datetime
    answered_at: datetime | None
    outcome: str | None

    @property
    def status(self) -> str:
        return "open" if self.answered_at is None else "answered"

    def overdue(self, now: datetime) -> bool:
        return self.answered_at is None and now > self.due_at


def _owner(child_id: str | None, filed_by: str) -> tuple[str, str]:
    return (child_id, PROFILE) if child_id is not None else (filed_by, PERSON)


async def file(
    sealer: Sealer,
    kind: str,
    child_id: str | None,
    filed_by: str,
    note: str | None,
    now: datetime,
) -> Request:
    request_id = new_id()
    owner, category = _owner(child_id, filed_by)
    sealed = (
        None
        if note is None
        else await sealer.seal_owned(owner, category, f"request:{request_id}", note.encode("utf-8"))
    )
    row = {
        "id": request_id,
        "type": kind,
        "child_id": child_id,
        "filed_by": filed_by,
        "received_at": now,
        "due_at": now + TERM,
        "sealed_note": sealed,
    }
    async with sealer.engine.begin() as conn:
        await conn.execute(requests.insert().values(**row))
    return _request(row)


def _request(row: Any) -> Request:
    values: dict[str, Any] = dict(row) if isinstance(row, dict) else dict(row._mapping)
    return Request(
        id=values["id"],
        type=values["type"],
        child_id=values["child_id"],
        filed_by=values["filed_by"],
        received_at=values["received_at"],
        due_at=values["due_at"],
        answered_at=values.get("answered_at"),
        outcome=values.get("outcome"),
    )


async def find(engine: AsyncEngine, request_id: str) -> Request:
    async with engine.connect() as conn:
        row = (await conn.execute(select(requests).where(requests.c.id == request_id))).first()
    if row is None:
        raise NotFound("There is no request with this id.")
    return _request(row)


async def listing(
    engine: AsyncEngine, now: datetime, *, filed_by: str | None, status: str | None
) -> list[Request]:
    """Overdue requests first, then by due date (the oldest deadline first)."""
    query = select(requests)
    if filed_by is not None:
        query = query.where(requests.c.filed_by == filed_by)
    if status == "open":
        query = query.where(requests.c.answered_at.is_(None))
    elif status == "answered":
        query = query.where(requests.c.answered_at.is_not(None))
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    found = [_request(row) for row in rows]
    return sorted(found, key=lambda r: (not r.overdue(now), r.due_at, r.id))


async def answer(
    sealer: Sealer, found: Request, outcome: str, note: str, by: str, now: datetime
) -> Request:
    owner, category = _owner(found.child_id, found.filed_by)
    sealed = await sealer.seal_owned(
        owner, category, f"request-answer:{found.id}", note.encode("utf-8")
    )
    async with sealer.engine.begin() as conn:
        result = await conn.execute(
            update(requests)
            .where(requests.c.id == found.id, requests.c.answered_at.is_(None))
            .values(answered_at=now, answered_by=by, outcome=outcome, sealed_answer=sealed)
        )
    if result.rowcount != 1:
        raise Conflict("This request was already answered.")
    return dataclasses.replace(found, answered_at=now, outcome=outcome)
