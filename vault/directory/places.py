"""Locations and their care groups, with their managers and staff.

Names are sealed under the key provider's ``directory`` master key
(vault/directory/sealing.py): no one's in particular, and no one's to read
in a backup.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import Executable

from vault.db.schema import care_groups, group_staff, location_managers, locations
from vault.directory.links import note_links
from vault.directory.people import require_role
from vault.directory.sealing import Sealer
from vault.errors import NotFound
from vault.tokens import new_id


async def create_location(engine: AsyncEngine, sealer: Sealer, name: str, now: datetime) -> str:
    location_id = new_id()
    sealed = await sealer.seal_place("locations", location_id, name)
    async with engine.begin() as conn:
        await conn.execute(
            insert(locations).values(id=location_id, sealed_name=sealed, created_at=now)
        )
    return location_id


async def _exists(engine: AsyncEngine, table: Table, row_id: str, what: str) -> None:
    async with engine.connect() as conn:
        found = await conn.scalar(select(table.c.id).where(table.c.id == row_id))
    if found is None:
        raise NotFound(f"There is no {what} with this id.")


async def add_manager(
    engine: AsyncEngine, location_id: str, person_id: str, now: datetime | None = None
) -> None:
    await _exists(engine, locations, location_id, "location")
    await require_role(engine, person_id, "location_manager", "a location manager")
    await _insert_once(
        engine,
        insert(location_managers).values(location_id=location_id, person_id=person_id),
        person_id,
        now or datetime.now(UTC),
    )


async def create_group(
    engine: AsyncEngine, sealer: Sealer, location_id: str, name: str, now: datetime
) -> str:
    await _exists(engine, locations, location_id, "location")
    group_id = new_id()
    sealed = await sealer.seal_place("care_groups", group_id, name)
    async with engine.begin() as conn:
        await conn.execute(
            insert(care_groups).values(
                id=group_id, location_id=location_id, sealed_name=sealed, created_at=now
            )
        )
    return group_id


async def require_group(engine: AsyncEngine, group_id: str) -> None:
    await _exists(engine, care_groups, group_id, "group")


async def add_staff(
    engine: AsyncEngine, group_id: str, person_id: str, now: datetime | None = None
) -> None:
    await require_group(engine, group_id)
    await require_role(engine, person_id, "staff", "group staff")
    await _insert_once(
        engine,
        insert(group_staff).values(group_id=group_id, person_id=person_id),
        person_id,
        now or datetime.now(UTC),
    )


async def remove_staff(
    engine: AsyncEngine, group_id: str, person_id: str, now: datetime | None = None
) -> None:
    """Take a staff member off a group: they stop seeing its children at once
    (the membership is a policy fact); off their last one, ``unlinked_at`` is
    ``now`` (vault/directory/links.py)."""
    await require_group(engine, group_id)
    async with engine.begin() as conn:
        result = await conn.execute(
            delete(group_staff).where(
                group_staff.c.group_id == group_id, group_staff.c.person_id == person_id
            )
        )
        if result.rowcount == 0:
            raise NotFound("This person is not on the staff of this group.")
        await note_links(conn, now or datetime.now(UTC), [person_id])


async def _insert_once(
    engine: AsyncEngine, statement: Executable, person_id: str, now: datetime
) -> None:
    """Insert a membership row; one that exists already is fine (idempotent).
    The person is linked from then on (``Conflict`` if they were forgotten)."""
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
            await note_links(conn, now, [person_id], adding=True)
    except IntegrityError:
        pass
