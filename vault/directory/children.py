"""Children: the sealed profile, placement, guardians, mentor; policy facts.

A child's names and birth date are sealed under the child's ``profile`` key
(:meth:`KeyService.seal_value`): the database holds them only as ciphertext.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.db.reads import Reader
from vault.db.schema import care_groups, children, consents, guardians, people, restrictions
from vault.directory.links import note_links
from vault.directory.people import require_role
from vault.directory.places import require_group
from vault.errors import Conflict, InvalidInput, NotFound
from vault.keys.service import KeyService
from vault.policy import Child, ConsentEvent
from vault.tokens import new_id

PROFILE = "profile"


@dataclasses.dataclass(frozen=True)
class Profile:
    first_name: str
    last_name: str
    birth_date: date


def _profile_label(child_id: str) -> str:
    return f"child-profile:{child_id}"


async def create_child(
    engine: AsyncEngine, keys: KeyService, profile: Profile, group_id: str, now: datetime
) -> str:
    await require_group(engine, group_id)
    child_id = new_id()
    sealed = await keys.seal_value(
        child_id, PROFILE, _profile_label(child_id), _sealed_profile(profile)
    )
    async with engine.begin() as conn:
        await conn.execute(
            insert(children).values(id=child_id, group_id=group_id, profile=sealed, created_at=now)
        )
    return child_id


def _sealed_profile(profile: Profile) -> bytes:
    return json.dumps(
        {
            "first_name": profile.first_name,
            "last_name": profile.last_name,
            "birth_date": profile.birth_date.isoformat(),
        }
    ).encode("utf-8")


async def rectify_child(
    engine: AsyncEngine,
    keys: KeyService,
    child_id: str,
    profile: Profile,
    group_id: str | None,
) -> str:
    """Store a corrected profile (sealed again: the old one is overwritten) and,
    when ``group_id`` is given, move the child to that group at once (the
    group is a policy fact: its old staff stop seeing the child's records).
    Returns the child's group."""
    if group_id is not None:
        await require_group(engine, group_id)
    sealed = await keys.seal_value(
        child_id, PROFILE, _profile_label(child_id), _sealed_profile(profile)
    )
    values: dict[str, object] = {"profile": sealed}
    if group_id is not None:
        values["group_id"] = group_id
    async with engine.begin() as conn:
        result = await conn.execute(
            update(children).where(children.c.id == child_id).values(**values)
        )
        group = await conn.scalar(select(children.c.group_id).where(children.c.id == child_id))
    if result.rowcount == 0 or group is None:
        raise NotFound()
    return str(group)


async def read_profile(engine: AsyncEngine, keys: KeyService, child_id: str) -> Profile:
    async with engine.connect() as conn:
        sealed = await conn.scalar(select(children.c.profile).where(children.c.id == child_id))
    if sealed is None:
        raise NotFound()
    return await open_profile(keys, child_id, sealed)


def sealed_profile_of(conn: Connection, child_id: str) -> bytes | None:
    """The child's profile as stored (sealed), to read in a batch of facts."""
    sealed = conn.scalar(select(children.c.profile).where(children.c.id == child_id))
    return bytes(sealed) if sealed is not None else None


async def open_profile(keys: KeyService, child_id: str, sealed: bytes) -> Profile:
    raw = json.loads(await keys.open_value(child_id, PROFILE, _profile_label(child_id), sealed))
    return Profile(raw["first_name"], raw["last_name"], date.fromisoformat(raw["birth_date"]))


#: Work done in the same transaction as a placement change, given the end
#: date it replaces (mail to the guardians when an end date is set).
AfterPlacement = Callable[[AsyncConnection, date | None], Awaitable[None]]


async def set_placement(
    engine: AsyncEngine,
    child_id: str,
    start: date,
    end: date | None,
    *,
    then: AfterPlacement | None = None,
) -> None:
    if end is not None and end < start:
        raise InvalidInput("end_date must not be before start_date.")
    async with engine.begin() as conn:
        previous = (
            await conn.execute(select(children.c.placement_end).where(children.c.id == child_id))
        ).first()
        if previous is None:
            raise NotFound()
        await conn.execute(
            update(children)
            .where(children.c.id == child_id)
            .values(placement_start=start, placement_end=end)
        )
        if then is not None:
            await then(conn, previous[0])


async def add_guardian(
    engine: AsyncEngine, child_id: str, person_id: str, relation: str, household: str, now: datetime
) -> None:
    await require_child(engine, child_id)
    await require_role(engine, person_id, "guardian", "a guardian")
    if relation == "contract_parent" and household != "shared":
        raise InvalidInput("A contract parent is the household the contract is with: 'shared'.")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                insert(guardians).values(
                    child_id=child_id,
                    person_id=person_id,
                    relation=relation,
                    household=household,
                    created_at=now,
                )
            )
            await note_links(conn, now, [person_id], adding=True)
    except IntegrityError:
        async with engine.connect() as conn:
            existing = (
                await conn.execute(
                    select(guardians.c.relation, guardians.c.household).where(
                        guardians.c.child_id == child_id, guardians.c.person_id == person_id
                    )
                )
            ).first()
        if existing is None or tuple(existing) != (relation, household):
            raise Conflict(
                "This person is already a guardian of the child with another relation."
            ) from None


_NO_CONTRACT_PARENT = (
    "This would leave the child without a contract parent while its records are visible "
    "to guardians; add the new contract parent first."
)


async def change_guardian(
    engine: AsyncEngine,
    child_id: str,
    person_id: str,
    *,
    relation: str | None,
    household: str | None,
    visible: bool,
) -> None:
    """Change a guardian's relation or household (``None``: unchanged).

    ``visible``: the records are visible to guardians now; then the last
    contract parent cannot stop being one (``Conflict``).
    """
    await _guardianship(engine, child_id, person_id, relation, household, visible, remove=False)


async def remove_guardian(
    engine: AsyncEngine,
    child_id: str,
    person_id: str,
    *,
    visible: bool,
    now: datetime | None = None,
) -> None:
    """Remove a guardian; not the last contract parent while ``visible``.
    Their last link gone, ``unlinked_at`` is ``now`` (vault/directory/links.py)."""
    await _guardianship(
        engine, child_id, person_id, None, None, visible, remove=True, now=now or datetime.now(UTC)
    )


async def _guardianship(
    engine: AsyncEngine,
    child_id: str,
    person_id: str,
    relation: str | None,
    household: str | None,
    visible: bool,
    *,
    remove: bool,
    now: datetime | None = None,
) -> None:
    await require_child(engine, child_id)
    async with engine.begin() as conn:
        # The child's guardians, locked (PostgreSQL): two removals at once
        # cannot both leave the other contract parent as the last one.
        rows = (
            await conn.execute(
                select(guardians.c.person_id, guardians.c.relation, guardians.c.household)
                .where(guardians.c.child_id == child_id)
                .with_for_update()
            )
        ).all()
        current = next((row for row in rows if row.person_id == person_id), None)
        if current is None:
            raise NotFound("This person is not a guardian of the child.")
        new_relation = relation or current.relation
        new_household = household or current.household
        if not remove and new_relation == "contract_parent" and new_household != "shared":
            raise InvalidInput("A contract parent is the household the contract is with: 'shared'.")
        left = [
            row for row in rows if row.relation == "contract_parent" and row.person_id != person_id
        ]
        stays = not remove and new_relation == "contract_parent"
        if visible and current.relation == "contract_parent" and not left and not stays:
            raise Conflict(_NO_CONTRACT_PARENT)
        where = (guardians.c.child_id == child_id, guardians.c.person_id == person_id)
        if remove:
            await conn.execute(delete(guardians).where(*where))
            await note_links(conn, now or datetime.now(UTC), [person_id])
        else:
            await conn.execute(
                update(guardians)
                .where(*where)
                .values(relation=new_relation, household=new_household)
            )


async def set_mentor(
    engine: AsyncEngine, child_id: str, person_id: str, now: datetime | None = None
) -> None:
    await require_role(engine, person_id, "staff", "mentor")
    moment = now or datetime.now(UTC)
    async with engine.begin() as conn:
        before = await conn.scalar(select(children.c.mentor_id).where(children.c.id == child_id))
        result = await conn.execute(
            update(children).where(children.c.id == child_id).values(mentor_id=person_id)
        )
        if result.rowcount == 0:
            raise NotFound()
        await note_links(conn, moment, [person_id], adding=True)
        if before is not None and before != person_id:
            await note_links(conn, moment, [before])


async def require_child(engine: AsyncEngine, child_id: str) -> None:
    async with engine.connect() as conn:
        if await conn.scalar(select(children.c.id).where(children.c.id == child_id)) is None:
            raise NotFound()


_CONTRACT_PARENT_ACTIVE = (
    select(guardians.c.person_id)
    .join(people, people.c.id == guardians.c.person_id)
    .where(
        and_(
            guardians.c.child_id == children.c.id,
            guardians.c.relation == "contract_parent",
            people.c.blocked_at.is_(None),
        )
    )
    .exists()
)
_RESTRICTED = (
    select(restrictions.c.id)
    .where(restrictions.c.child_id == children.c.id, restrictions.c.lifted_at.is_(None))
    .exists()
)
#: Built once (see vault.directory.people): policy facts are read on every request.
_CHILD = (
    select(
        children.c.id,
        children.c.group_id,
        care_groups.c.location_id,
        children.c.placement_start,
        children.c.placement_end,
        _CONTRACT_PARENT_ACTIVE.label("contract_parent_active"),
        _RESTRICTED.label("restricted"),
    )
    .join(care_groups, care_groups.c.id == children.c.group_id)
    .where(children.c.id == bindparam("child_id"))
)
_CONSENTS = (
    select(consents.c.type, consents.c.granted, consents.c.changed_at)
    .where(consents.c.child_id == bindparam("child_id"))
    .order_by(consents.c.seq)
)


def child_facts_of(conn: Connection, child_id: str) -> Child | None:
    """What the policy needs to know about a child; None if there is no such child."""
    row = conn.execute(_CHILD, {"child_id": child_id}).first()
    if row is None:
        return None
    events = conn.execute(_CONSENTS, {"child_id": child_id}).all()
    return Child(
        id=row.id,
        group_id=row.group_id,
        location_id=row.location_id,
        placement_start=row.placement_start,
        placement_end=row.placement_end,
        consents=tuple(ConsentEvent(e.type, e.granted, e.changed_at) for e in events),
        contract_parent_active=bool(row.contract_parent_active),
        restricted=bool(row.restricted),
    )


async def child_facts(reader: Reader, child_id: str) -> Child | None:
    return await reader(lambda conn: child_facts_of(conn, child_id))
