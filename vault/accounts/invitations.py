"""Invitations: a one-time link by mail that lets a person choose a password.

The link is ``{public_url}/invite/{token}``; the token (``ki_<id>.<secret>``,
256 random bits) is kept only as a SHA-256, lives seven days and works
once. A newer invitation for the same person replaces any open older one.
The row and its mail are written in one transaction.

Choice: accepting an invitation is also how an admin restores access (a
forgotten password, a lost phone): it sets the password, ends the person's
other sessions and switches one-time codes off, to be set up again.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.accounts import store
from vault.db.schema import invitations, people
from vault.directory.people import email_of
from vault.directory.sealing import Sealer, email_hash
from vault.errors import Conflict, InvalidInput, KluisError
from vault.mail import notices
from vault.tokens import INVITATION_PREFIX, new_token, parse_token, secret_matches

VALID_FOR = timedelta(days=7)


class InvitationInvalid(KluisError):
    status, code = 403, "link_invalid"
    default_message = "This invitation link is not valid; ask for a new invitation."


class InvitationExpired(KluisError):
    status, code = 403, "link_expired"
    default_message = "This invitation was used already or has expired; ask for a new one."


@dataclasses.dataclass(frozen=True)
class Invited:
    id: str
    expires_at: datetime


@dataclasses.dataclass(frozen=True)
class Invitee:
    invitation_id: str
    person_id: str
    email: str


async def invite(
    engine: AsyncEngine,
    sealer: Sealer,
    person_id: str,
    by: str | None,
    now: datetime,
    base_url: str,
) -> Invited:
    # The address is sealed under the person's key: opened before the
    # transaction (NotFound for no such person).
    address = await email_of(engine, sealer, person_id)
    if not address:
        raise InvalidInput("This person has no e-mail address to send the invitation to.")
    token = new_token(INVITATION_PREFIX)
    # The link names its row by this id; only its secret part is secret.
    invitation_id = token.id
    expires_at = now + VALID_FOR
    async with engine.begin() as conn:
        if await store.address_taken(conn, email_hash(sealer.provider, address), person_id):
            raise Conflict(
                "Another account signs in with this e-mail address; give this person another one."
            )
        await conn.execute(
            update(invitations)
            .where(
                invitations.c.person_id == person_id,
                invitations.c.used_at.is_(None),
                invitations.c.superseded_at.is_(None),
            )
            .values(superseded_at=now)
        )
        await conn.execute(
            insert(invitations).values(
                id=invitation_id,
                person_id=person_id,
                token_hash=token.secret_hash,
                created_at=now,
                expires_at=expires_at,
                created_by=by,
            )
        )
        link = f"{base_url.rstrip('/')}/invite/{token.token}"
        await notices.invitation(conn, sealer.provider, address, link, expires_at, now)
    return Invited(invitation_id, expires_at)


async def look_up(engine: AsyncEngine, sealer: Sealer, raw: str, now: datetime) -> Invitee:
    """Whose invitation the token is, if it can still be accepted (not consumed yet)."""
    parsed = parse_token(raw, INVITATION_PREFIX)
    if parsed is None:
        raise InvitationInvalid()
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    invitations.c.person_id,
                    invitations.c.token_hash,
                    invitations.c.expires_at,
                    invitations.c.used_at,
                    invitations.c.superseded_at,
                    people.c.profile,
                )
                .join(people, people.c.id == invitations.c.person_id)
                .where(invitations.c.id == parsed[0])
            )
        ).first()
    if row is None or not secret_matches(parsed[1], row.token_hash):
        raise InvitationInvalid()
    if row.used_at is not None or row.superseded_at is not None or row.expires_at <= now:
        raise InvitationExpired()
    person_id = str(row.person_id)
    data = await sealer.open_person(person_id, row.profile)
    if data is None or not data.email:
        raise InvitationInvalid("This person no longer has an e-mail address; ask the admin.")
    return Invitee(parsed[0], person_id, data.email)


async def consume(conn: AsyncConnection, invitee: Invitee, now: datetime) -> None:
    """Use the invitation up in the caller's transaction; ``InvitationExpired``
    if another request used it (or it ran out) since :func:`look_up`."""
    result = await conn.execute(
        update(invitations)
        .where(
            invitations.c.id == invitee.invitation_id,
            invitations.c.used_at.is_(None),
            invitations.c.superseded_at.is_(None),
            invitations.c.expires_at > now,
        )
        .values(used_at=now)
    )
    if result.rowcount != 1:
        raise InvitationExpired()
