"""What links a person to a living record, and since when nothing has (issue 19 item 8).

A person's own data (name, e-mail address) is kept while something links
them to a living record; a term after the last link went
(``retention.person_term_days``), the retention job destroys it
(vault/retention/people.py). ``people.unlinked_at`` says since when nothing
links them: set when the last link goes, cleared when a new one comes, by
:func:`note_links` in the transaction of every directory change that adds
or removes a link, and brought up to date for everyone by each retention run
(a child's records end by the clock, not by a call).

What counts as a link (our reading of DOMAIN.md and the seeds):

* **guardian**, or **mentor**, of a child whose records still live: the
  child's ``profile`` key is not destroyed. It lives as long as the longest
  term of any of the child's categories (holds included), so a contract
  parent is kept as long as the statutory invoices and annual statements
  that are about them [001, 003];
* **staff of a group**, **manager of a location**: they work there. Taken
  off their last group or location, their employment with these children
  has ended; the seeds keep a staff member's data "at most two years after
  the employment ended" [001 II, 003 §2.1], the default term.

Only the roles whose access comes from such links are subject to this:
``guardian``, ``staff``, ``location_manager``. The other roles (``admin``,
``administration``, ``privacy_officer``, ``inspector``) hold organisation-wide
posts the vault links to nothing, so it cannot tell when their employment
ended; this job never forgets them (a person's own erasure on request is
not built yet).

May touch: ``people.unlinked_at`` (and read the link tables).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.db.schema import child_keys, children, group_staff, guardians, location_managers, people
from vault.errors import Conflict

#: The roles whose own data ends a term after their last link (see above).
SUBJECT_ROLES = ("guardian", "staff", "location_manager")
#: The child key whose life is the child's records' life (vault/retention/schedule.py).
_PROFILE = "profile"

FORGOTTEN = (
    "This person's own data was destroyed (nothing linked them to a living record for the "
    "term); add them anew as a new person."
)


def _living(child_id: ColumnElement[str]) -> ColumnElement[bool]:
    return exists().where(
        child_keys.c.child_id == child_id,
        child_keys.c.category == _PROFILE,
        child_keys.c.destroyed_at.is_(None),
    )


def linked(person_id: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether something links the person with this id to a living record (SQL)."""
    return or_(
        exists().where(guardians.c.person_id == person_id, _living(guardians.c.child_id)),
        exists().where(children.c.mentor_id == person_id, _living(children.c.id)),
        exists().where(group_staff.c.person_id == person_id),
        exists().where(location_managers.c.person_id == person_id),
    )


async def note_links(
    conn: AsyncConnection,
    now: datetime,
    person_ids: Iterable[str] | None = None,
    *,
    adding: bool = False,
) -> tuple[int, int]:
    """Bring ``unlinked_at`` up to date for these people (None: everyone), in
    the caller's transaction: cleared for the linked, set to ``now`` for the
    newly unlinked. How many were (cleared, marked).

    ``adding``: the caller just gave them a link; ``Conflict`` (rolling it
    back) if one of them was forgotten meanwhile: a link to a person whose
    data is destroyed would name no one.
    """
    wanted = None if person_ids is None else sorted(set(person_ids))
    scope: list[ColumnElement[bool]] = [
        people.c.forgotten_at.is_(None),
        people.c.role.in_(SUBJECT_ROLES),
    ]
    if wanted is not None:
        if not wanted:
            return 0, 0
        scope.append(people.c.id.in_(wanted))
    link = linked(people.c.id)
    cleared = await conn.execute(
        update(people)
        .where(and_(*scope), people.c.unlinked_at.is_not(None), link)
        .values(unlinked_at=None)
    )
    marked = await conn.execute(
        update(people)
        .where(and_(*scope), people.c.unlinked_at.is_(None), ~link)
        .values(unlinked_at=now)
    )
    if adding and wanted:
        # After the updates: on PostgreSQL a forgetting that committed
        # meanwhile is seen here (the row was locked until it did).
        forgotten = await conn.scalar(
            select(people.c.id).where(people.c.id.in_(wanted), people.c.forgotten_at.is_not(None))
        )
        if forgotten is not None:
            raise Conflict(FORGOTTEN)
    return int(cleared.rowcount), int(marked.rowcount)
