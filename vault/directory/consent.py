"""The consent ledger: append-only, per child and type, with who and when."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import consents
from vault.policy import CONSENT_TYPES


@dataclasses.dataclass(frozen=True)
class ConsentChange:
    type: str
    granted: bool
    changed_at: datetime
    by: str


async def record(
    engine: AsyncEngine, child_id: str, kind: str, granted: bool, by: str, now: datetime
) -> ConsentChange:
    async with engine.begin() as conn:
        await conn.execute(
            insert(consents).values(
                child_id=child_id,
                type=kind,
                granted=granted,
                changed_at=now,
                changed_by=by,
            )
        )
    return ConsentChange(kind, granted, now, by)


async def history(engine: AsyncEngine, child_id: str) -> list[ConsentChange]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(consents).where(consents.c.child_id == child_id).order_by(consents.c.seq)
            )
        ).all()
    return [ConsentChange(r.type, r.granted, r.changed_at, r.changed_by) for r in rows]


def current(changes: list[ConsentChange]) -> dict[str, bool]:
    """The state now: the latest change per type; never given means not given."""
    state = dict.fromkeys(CONSENT_TYPES, False)
    for change in changes:
        state[change.type] = change.granted
    return state
