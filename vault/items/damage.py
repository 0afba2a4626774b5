"""Damaged blobs on record, for the operator.

A blob that fails its integrity check while it is served (vault/share/delivery.py)
or read by ``kluis storage verify`` (vault/items/verify.py) gets a row in
``damaged_blobs``: which item and variant, what was wrong (``integrity``: it
does not authenticate; ``missing``: the store does not have it), who found
it and when. ``kluis storage verify`` lists them; a verify that finds the
blob whole again (after a restore from a backup) clears its row.

Nothing here says more than the ids: no key, no name, no content.
May touch: the ``damaged_blobs`` table, and ``item_blobs`` to name the blob.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError as RowConflict
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import damaged_blobs, item_blobs

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Damage:
    item_id: str
    variant: str
    blob_key: str
    reason: str
    found_by: str
    first_found_at: datetime
    last_found_at: datetime


async def report(
    engine: AsyncEngine,
    item_id: str,
    variant: str,
    *,
    reason: str,
    found_by: str,
    now: datetime,
    blob_key: str | None = None,
) -> None:
    """Put the blob of ``item_id``/``variant`` on record as damaged (again)."""
    async with engine.begin() as conn:
        if blob_key is None:
            blob_key = await conn.scalar(
                select(item_blobs.c.blob_key).where(
                    item_blobs.c.item_id == item_id, item_blobs.c.variant == variant
                )
            )
            if blob_key is None:
                return  # the item went meanwhile (destroyed): nothing to look at
        seen = await conn.execute(
            update(damaged_blobs)
            .where(damaged_blobs.c.blob_key == blob_key)
            .values(reason=reason, found_by=found_by, last_found_at=now)
        )
    if seen.rowcount:
        return
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(damaged_blobs).values(
                    blob_key=blob_key,
                    item_id=item_id,
                    variant=variant,
                    reason=reason,
                    found_by=found_by,
                    first_found_at=now,
                    last_found_at=now,
                )
            )
    except RowConflict:
        pass  # another request put it on record first


async def clear(engine: AsyncEngine, blob_key: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(delete(damaged_blobs).where(damaged_blobs.c.blob_key == blob_key))


async def damaged(engine: AsyncEngine) -> list[Damage]:
    """Every blob on record as damaged, oldest finding first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(damaged_blobs).order_by(
                    damaged_blobs.c.first_found_at, damaged_blobs.c.blob_key
                )
            )
        ).all()
    return [
        Damage(
            item_id=r.item_id,
            variant=r.variant,
            blob_key=r.blob_key,
            reason=r.reason,
            found_by=r.found_by,
            first_found_at=r.first_found_at,
            last_found_at=r.last_found_at,
        )
        for r in rows
    ]


class DamageLog:
    """What a serving process reports damage to (an app resource)."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime]) -> None:
        self._engine, self._clock = engine, clock

    async def found(self, item_id: str, variant: str) -> None:
        """A blob failed while served; never raises (the answer is ending already)."""
        try:
            await report(
                self._engine,
                item_id,
                variant,
                reason="integrity",
                found_by="serve",
                now=self._clock(),
            )
        except SQLAlchemyError as exc:
            log.warning("a damaged blob could not be put on record: %s", type(exc).__name__)
