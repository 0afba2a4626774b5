"""Sessions: the tokens a sign-in gives, kept like every token (a hash only).

A session lives ``auth.session_hours_guardian`` for a guardian (the parent
app stays signed in) and ``auth.session_hours_staff`` for everyone else,
from the moment of sign-in. It records how it began, the address and user
agent it came from and when it was last used, and ends at sign-out, when
its owner ends it, at a password change (all the person's others), and
when the person is blocked (:func:`vault.directory.people.set_block`).

A device is known when an earlier session of the same person came with the
same user agent; a sign-in from another one is mailed to the person.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.config import AuthSettings
from vault.db.schema import tokens
from vault.directory.people import store_token
from vault.tokens import new_token

SESSION = "session"


def lifetime(role: str, settings: AuthSettings) -> timedelta:
    if role == "guardian":
        return timedelta(hours=settings.session_hours_guardian)
    return timedelta(hours=settings.session_hours_staff)


def device_of(agent: str | None) -> str:
    return hashlib.sha256((agent or "").encode("utf-8")).hexdigest()


@dataclasses.dataclass(frozen=True)
class NewSession:
    id: str
    token: str = dataclasses.field(repr=False)
    expires_at: datetime
    #: No earlier session of this person came from this device.
    new_device: bool
    #: It is the person's first session ever.
    first: bool


async def open_session(
    conn: AsyncConnection,
    person_id: str,
    role: str,
    now: datetime,
    settings: AuthSettings,
    *,
    method: str,
    second_factor: bool,
    ip: str | None,
    agent: str | None,
) -> NewSession:
    """Make a session in the caller's transaction."""
    device = device_of(agent)
    mine = (tokens.c.person_id == person_id) & (tokens.c.kind == SESSION)
    first = not await conn.scalar(select(exists().where(mine)))
    known = await conn.scalar(select(exists().where(mine & (tokens.c.device == device))))
    token = new_token()
    expires_at = now + lifetime(role, settings)
    await store_token(
        conn,
        person_id,
        token,
        now,
        expires_at,
        kind=SESSION,
        method=method,
        second_factor=second_factor,
        ip=(ip or "")[:64] or None,
        user_agent=(agent or "")[:512] or None,
        device=device,
        last_used_at=now,
    )
    return NewSession(token.id, token.token, expires_at, new_device=not known, first=first)


@dataclasses.dataclass(frozen=True)
class Session:
    id: str
    created_at: datetime
    last_used_at: datetime | None
    ip: str | None
    user_agent: str | None
    expires_at: datetime | None


async def live_sessions(engine: AsyncEngine, person_id: str, now: datetime) -> list[Session]:
    """The person's sessions that still work, newest first."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    tokens.c.id,
                    tokens.c.created_at,
                    tokens.c.last_used_at,
                    tokens.c.ip,
                    tokens.c.user_agent,
                    tokens.c.expires_at,
                )
                .where(
                    tokens.c.person_id == person_id,
                    tokens.c.kind == SESSION,
                    tokens.c.revoked_at.is_(None),
                    tokens.c.expires_at > now,
                )
                .order_by(tokens.c.created_at.desc(), tokens.c.id)
            )
        ).all()
    return [Session(*row) for row in rows]


async def end_session(engine: AsyncEngine, person_id: str, token_id: str, now: datetime) -> bool:
    """End one of the person's own sessions; False if there is no such live one."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(tokens)
            .where(
                tokens.c.id == token_id,
                tokens.c.person_id == person_id,
                tokens.c.kind == SESSION,
                tokens.c.revoked_at.is_(None),
            )
            .values(revoked_at=now)
        )
    return bool(result.rowcount)


async def revoke_token(engine: AsyncEngine, token_id: str, now: datetime) -> None:
    """Stop the token a call came with (sign-out), whatever its kind."""
    async with engine.begin() as conn:
        await conn.execute(
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )


async def passed_second_factor(engine: AsyncEngine, token_id: str) -> None:
    """The session just confirmed one-time codes: it counts as a two-step one."""
    async with engine.begin() as conn:
        await conn.execute(update(tokens).where(tokens.c.id == token_id).values(second_factor=True))
