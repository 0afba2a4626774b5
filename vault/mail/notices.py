"""Who is told what by mail, written into the caller's transaction.

Each function seals the mail for its outbox row and puts it in the
transaction of the change that causes it, so the mail goes if and only if
the change commits.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from vault.db.schema import guardians, people
from vault.directory.sealing import Sealer
from vault.keys.provider import KeyProvider
from vault.mail import messages, outbox


async def invitation(
    conn: AsyncConnection,
    provider: KeyProvider,
    to: str,
    link: str,
    expires_at: datetime,
    now: datetime,
) -> None:
    mail = await outbox.seal(provider, "invitation", messages.invitation(to, link, expires_at))
    await outbox.put(conn, mail, now)


async def new_sign_in(
    conn: AsyncConnection,
    provider: KeyProvider,
    to: str,
    ip: str | None,
    agent: str | None,
    app_url: str,
    now: datetime,
) -> None:
    message = messages.new_sign_in(to, now, ip, agent, app_url)
    await outbox.put(conn, await outbox.seal(provider, "new_sign_in", message), now)


async def contract_end(
    conn: AsyncConnection,
    sealer: Sealer,
    child_id: str,
    end: date,
    visible_until: date,
    app_url: str,
    now: datetime,
) -> int:
    """Tell every guardian of the child (with an address, not blocked) until
    when the records stay visible; how many were told.

    Addresses are sealed under each guardian's key (vault/directory/sealing.py):
    those with one have an ``email_hash``; opening them only reads key rows.
    """
    rows = (
        await conn.execute(
            select(people.c.id, people.c.profile)
            .join(guardians, guardians.c.person_id == people.c.id)
            .where(
                guardians.c.child_id == child_id,
                people.c.email_hash.is_not(None),
                people.c.forgotten_at.is_(None),
                people.c.blocked_at.is_(None),
            )
            .order_by(people.c.id)
        )
    ).all()
    told = 0
    for row in rows:
        data = await sealer.open_person(row.id, row.profile)
        if data is None or not data.email:
            continue
        message = messages.contract_end(data.email, end, visible_until, app_url)
        await outbox.put(conn, await outbox.seal(sealer.provider, "contract_end", message), now)
        told += 1
    return told
