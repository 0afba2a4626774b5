"""Restriction of processing (GDPR art. 18; issue 19 item 5).

A restriction is a policy fact (``Child.restricted``, read with the child's
facts; the facts-version triggers of migration 0014 make every process see
a change at its next decision): while it stands the policy refuses new
records and every reading, link and hand-out to all but the privacy officer
(``restricted``); retention still runs. At most one stands per child; its
reason is sealed under the child's profile key (vault/directory/sealing.py).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.locks import in_transaction
from vault.db.schema import restrictions
from vault.directory.sealing import Sealer
from vault.errors import Conflict, NotFound
from vault.tokens import new_id


async def place(sealer: Sealer, child_id: str, reason: str, by: str, now: datetime) -> str:
    """Restrict the child's processing; the restriction's id. ``Conflict`` if one stands."""
    restriction_id = new_id()
    sealed = await sealer.seal_for_child(child_id, f"restriction:{restriction_id}", reason)
    async with sealer.engine.begin() as conn:
        await in_transaction(conn, f"restriction:{child_id}")
        standing = await conn.scalar(
            select(restrictions.c.id).where(
                restrictions.c.child_id == child_id, restrictions.c.lifted_at.is_(None)
            )
        )
        if standing is not None:
            raise Conflict("Processing of this child's records is already restricted.")
        await conn.execute(
            insert(restrictions).values(
                id=restriction_id,
                child_id=child_id,
                sealed_reason=sealed,
                created_at=now,
                created_by=by,
            )
        )
    return restriction_id


async def lift(engine: AsyncEngine, child_id: str, by: str, now: datetime) -> str:
    """Lift the standing restriction; its id. ``NotFound`` if none stands."""
    async with engine.begin() as conn:
        standing = await conn.scalar(
            select(restrictions.c.id).where(
                restrictions.c.child_id == child_id, restrictions.c.lifted_at.is_(None)
            )
        )
        if standing is None:
            raise NotFound("No restriction of this child's processing stands.")
        await conn.execute(
            update(restrictions)
            .where(restrictions.c.id == standing)
            .values(lifted_at=now, lifted_by=by)
        )
    return str(standing)
