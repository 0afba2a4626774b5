"""What the vault holds on a child or a person (GDPR art. 15), gathered for a report.

A child's report names, per category the caller reads: how many records are
held, why (:mod:`vault.rights.purposes`), who else handles them (the
processor register of the configuration), and the retention dates of the
schedule; then the consents in force and their history, and a summary of
the audit log (events, since when, by role). A person's report names their
own data, the children they are linked to, their working tokens and the
events of their own calls.

Who may see which report, and how far it reaches, is the policy's
(``report.view``, ``report.view_own``, :func:`vault.policy.report_view`);
this module only reads. It touches no record's content and opens no
record's key: names are opened with the directory's sealer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import date, datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit.queries import Summary, child_summary, person_summary
from vault.config import Processor
from vault.db.schema import guardians, item_children, items, tokens
from vault.directory import consent
from vault.directory.children import Profile
from vault.directory.people import names_of, read_person
from vault.directory.sealing import Sealer
from vault.policy import KINDS, Child, Principal, ReportView
from vault.retention.schedule import CategorySchedule
from vault.rights.purposes import PURPOSES, Purpose


@dataclasses.dataclass(frozen=True)
class Category:
    count: int
    purpose: Purpose
    #: The processors of the register that handle this kind.
    recipients: list[str]
    visible_until: date | None
    archived_from: date | None
    destroy_at: date | None
    statutory: bool


@dataclasses.dataclass(frozen=True)
class Guardian:
    id: str
    #: None once the person's own data is destroyed.
    name: str | None
    relation: str
    household: str


@dataclasses.dataclass(frozen=True)
class ChildReport:
    child_id: str
    profile: Profile
    generated_at: datetime
    guardians: list[Guardian]
    categories: dict[str, Category]
    consents: dict[str, bool]
    history: list[consent.ConsentChange]
    access: Summary
    processors: tuple[Processor, ...]
    #: Names of the guardians shown, for the consent history's "by".
    changed_by: dict[str, str]


def recipients(processors: tuple[Processor, ...], kind: str) -> list[str]:
    """The processors that handle ``kind`` (one with no categories handles all)."""
    return [p.name for p in processors if not p.categories or kind in p.categories]


async def held_counts(engine: AsyncEngine, child_id: str) -> dict[str, int]:
    """Records held (not destroyed) per kind, the child's own and those it is in
    (not a group photo whose share for this child was destroyed)."""
    query = (
        select(items.c.kind, func.count())
        .select_from(item_children.join(items, items.c.id == item_children.c.item_id))
        .where(
            item_children.c.child_id == child_id,
            item_children.c.destroyed_at.is_(None),
            items.c.destroyed_at.is_(None),
        )
        .group_by(items.c.kind)
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return {str(kind): int(n) for kind, n in rows}


async def child_report(
    engine: AsyncEngine,
    sealer: Sealer,
    *,
    child: Child,
    profile: Profile,
    principal: Principal,
    view: ReportView,
    plan: Mapping[str, CategorySchedule],
    processors: tuple[Processor, ...],
    now: datetime,
) -> ChildReport:
    counts = await held_counts(engine, child.id)
    categories = {
        kind: Category(
            count=counts.get(kind, 0),
            purpose=PURPOSES[kind],
            recipients=recipients(processors, kind),
            visible_until=plan[kind].visible_until,
            archived_from=plan[kind].archived_from,
            destroy_at=plan[kind].destroy_at,
            statutory=plan[kind].statutory,
        )
        for kind in KINDS
        if kind in view.kinds
    }
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(guardians.c.person_id, guardians.c.relation, guardians.c.household)
                .where(guardians.c.child_id == child.id)
                .order_by(guardians.c.created_at, guardians.c.person_id)
            )
        ).all()
    if not view.guardians:
        rows = [row for row in rows if row.person_id == principal.id]
    shown = {row.person_id for row in rows}
    names = await names_of(engine, sealer, shown)
    changes = await consent.history(engine, child.id)
    return ChildReport(
        child_id=child.id,
        profile=profile,
        generated_at=now,
        guardians=[
            Guardian(row.person_id, names.get(row.person_id), row.relation, row.household)
            for row in rows
        ],
        categories=categories,
        consents=consent.current(changes),
        history=changes,
        access=await child_summary(engine, child.id),
        processors=processors,
        changed_by=names,
    )


@dataclasses.dataclass(frozen=True)
class Token:
    id: str
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None


@dataclasses.dataclass(frozen=True)
class PersonReport:
    id: str
    name: str | None
    email: str | None
    role: str
    generated_at: datetime
    children: list[str]
    tokens: list[Token]
    access: Summary


async def person_report(
    engine: AsyncEngine, sealer: Sealer, principal: Principal, now: datetime
) -> PersonReport:
    """The caller's own data, links, tokens that still work, and own calls."""
    person = await read_person(engine, sealer, principal.id)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(tokens.c.id, tokens.c.created_at, tokens.c.last_used_at, tokens.c.expires_at)
                .where(
                    tokens.c.person_id == principal.id,
                    tokens.c.revoked_at.is_(None),
                    or_(tokens.c.expires_at.is_(None), tokens.c.expires_at > now),
                )
                .order_by(tokens.c.created_at, tokens.c.id)
            )
        ).all()
    return PersonReport(
        id=person.id,
        name=person.name,
        email=person.email,
        role=person.role,
        generated_at=now,
        children=sorted(set(principal.guardian_of) | principal.mentor_of),
        tokens=[Token(r.id, r.created_at, r.last_used_at, r.expires_at) for r in rows],
        access=await person_summary(engine, principal.id),
    )
