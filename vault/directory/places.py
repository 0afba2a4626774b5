"""Locations and their care groups, with their managers and staff."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql.expression import Executable

from vault.db.schema import care_groups, group_staff, location_managers, locations
from vault.directory.people import require_role
from vault.errors import NotFound
from vault.tokens import new_id


async def create_location(engine: AsyncEngine, name: str, now: datetime) -> str:
    location_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(insert(locations).values(id=location_id, name=name, created_at=now))
    return location_id


async def _exists(engine: AsyncEngine, table: Table, row_id: str, what: str) -> None:
    async with engine.connect() as conn:
        found = await conn.scalar(select(table.c.id).where(table.c.id == row_id))
    if found is None:
        raise NotFound(f"There is no {what} with this id.")


async def add_manager(engine: AsyncEngine, location_id: str, person_id: str) -> None:
    await _exists(engine, locations, location_id, "location")
    await require_role(engine, person_id, "location_manager", "a location manager")
    await _insert_once(
        engine, insert(location_managers).values(location_id=location_id, person_id=person_id)
    )


async def create_group(engine: AsyncEngine, location_id: str, name: str, now: datetime) -> str:
    await _exists(engine, locations, location_id, "location")
    group_id = new_id()
    async with engine.begin() as conn:
        await conn.execute(
            insert(care_groups).values(
                id=group_id, location_id=location_id, name=name, created_at=now
            )
        )
    return group_id


async def require_group(engine: AsyncEngine, group_id: str) -> None:
    await _exists(engine, care_groups, group_id, "group")


async def add_staff(engine: AsyncEngine, group_id: str, person_id: str) -> None:
    await require_group(engine, group_id)
    await require_role(engine, person_id, "staff", "group staff")
    await _insert_once(engine, insert(group_staff).values(group_id=group_id, person_id=person_id))


async def _insert_once(engine: AsyncEngine, statement: Executable) -> None:
    """Insert a membership row; one that exists already is fine (idempotent)."""
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
    except IntegrityError:
        pass
