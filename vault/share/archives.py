"""Export rows: the plan of a guardian's archive, sealed under the child's profile key.

The plan (names, sizes, CRC-32s, the generated index.html and diary.json,
a stamp of every record it was made from and one of the child's name on its
pages) is frozen when the export is made, so every download of it, and
every resumed range, is the same bytes. It dies with the child's profile
key. A rectified record or name does not delete an export: its stamp no
longer matches, and the link refuses
(:func:`vault.share.at_use.allow_export`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.db.schema import exports
from vault.directory.children import PROFILE
from vault.errors import Destroyed, NotFound
from vault.keys.service import KeyService
from vault.share import export
from vault.share.links import Claims
from vault.tokens import new_id


def _label(export_id: str) -> str:
    return f"export:{export_id}"


async def save(
    engine: AsyncEngine,
    keys: KeyService,
    child_id: str,
    person_id: str,
    plan: export.Plan,
    now: datetime,
    ttl: int,
) -> str:
    """Keep the plan for ``person_id``; the export's id (the link's subject)."""
    export_id = new_id()
    sealed = await keys.seal_value(child_id, PROFILE, _label(export_id), plan.to_json())
    async with engine.begin() as conn:
        await conn.execute(
            insert(exports).values(
                id=export_id,
                child_id=child_id,
                person_id=person_id,
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
                size=plan.size,
                manifest=sealed,
            )
        )
    return export_id


async def find(engine: AsyncEngine, claims: Claims) -> Row[Any]:
    """The export a verified link names; ``NotFound`` unless it is the link's person's."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(exports).where(exports.c.id == claims.subject))).first()
    if row is None or row.person_id != claims.principal:
        raise NotFound()
    return row


async def plan_of(keys: KeyService, row: Row[Any]) -> export.Plan:
    """The frozen plan; ``Destroyed`` once the child's profile key is gone."""
    try:
        raw = await keys.open_value(row.child_id, PROFILE, _label(row.id), row.manifest)
    except Destroyed:
        raise Destroyed("This child's records were destroyed; the export went with them.") from None
    try:
        return export.Plan.from_json(raw)
    except export.OlderFormat:
        # Made before stamps (links live a day at most): its records cannot be checked.
        raise Destroyed(
            "This export was made by an earlier version of the vault; ask for a new export."
        ) from None
