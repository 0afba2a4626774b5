"""Destruction certificates, read back (issue 19 item 7).

The retention job, rotation, erasure and restore write one row per
destroyed child key in the transaction that destroys it
(vault/retention/job.py, ``certify``); this module reads them for a
child, one certificate per category and run: how many records, under which
epochs' keys, when, by which run. The rows name no one and hold no
content, so they are kept, and readable, after the child's records are gone.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import destruction_certificates


@dataclasses.dataclass(frozen=True)
class Certificate:
    category: str
    destroyed_at: datetime
    items: int
    epochs: tuple[str, ...]
    run_id: str
    cause: str


async def certificates_of(engine: AsyncEngine, child_id: str) -> list[Certificate]:
    """The child's certificates, oldest first."""
    table = destruction_certificates
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(table)
                .where(table.c.child_id == child_id)
                .order_by(table.c.destroyed_at, table.c.category, table.c.id)
            )
        ).all()
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row.run_id, row.category), []).append(row)
    out = []
    for (run_id, category), group in grouped.items():
        out.append(
            Certificate(
                category=category,
                destroyed_at=max(r.destroyed_at for r in group),
                items=sum(r.item_count for r in group),
                epochs=tuple(sorted({r.epoch for r in group})),
                run_id=run_id,
                cause=group[0].cause,
            )
        )
    return sorted(out, key=lambda c: (c.destroyed_at, c.category))
