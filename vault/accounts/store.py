"""The ``accounts`` table: a person's sign-in address (as its keyed hash,
never in clear), password hash and one-time-code secret. Nothing here
checks a password or opens a secret.

An address is looked up by the directory's keyed hash
(:func:`vault.directory.sealing.email_hash`, the address trimmed and lower
case), so sign-in by address stays case-insensitive; an account whose
person's own data was destroyed (vault/retention/people.py) is gone.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.db.schema import accounts, people
from vault.directory.sealing import email_hash
from vault.keys.provider import KeyProvider


@dataclasses.dataclass(frozen=True)
class Account:
    person_id: str
    #: The sign-in address's keyed hash (None: it has none, signs in by no address).
    email_hash: bytes | None = dataclasses.field(repr=False)
    password_hash: str = dataclasses.field(repr=False)
    totp_sealed: bytes | None = dataclasses.field(repr=False)
    totp_pending: bytes | None = dataclasses.field(repr=False)
    totp_used_step: int | None

    @property
    def totp_enabled(self) -> bool:
        return self.totp_sealed is not None

    @property
    def throttle_key(self) -> str:
        """What failed attempts on this account are counted under
        (vault/accounts/throttle.py): the address's hash, as a sign-in counts them."""
        return self.email_hash.hex() if self.email_hash is not None else f"person:{self.person_id}"


_COLUMNS = (
    accounts.c.person_id,
    accounts.c.email_hash,
    accounts.c.password_hash,
    accounts.c.totp_sealed,
    accounts.c.totp_pending,
    accounts.c.totp_used_step,
)


async def by_email(engine: AsyncEngine, provider: KeyProvider, address: str) -> Account | None:
    """The account that signs in with this address (any case), by its keyed hash."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(*_COLUMNS)
                .join(people, people.c.id == accounts.c.person_id)
                .where(
                    accounts.c.email_hash == email_hash(provider, address),
                    people.c.forgotten_at.is_(None),
                )
            )
        ).first()
    return Account(*row) if row is not None else None


async def by_person(engine: AsyncEngine, person_id: str) -> Account | None:
    async with engine.connect() as conn:
        query = select(*_COLUMNS).where(accounts.c.person_id == person_id)
        row = (await conn.execute(query)).first()
    return Account(*row) if row is not None else None


async def address_taken(conn: AsyncConnection, hashed: bytes, person_id: str) -> bool:
    """Whether another person signs in with the address of this keyed hash."""
    other = await conn.scalar(
        select(accounts.c.person_id).where(
            accounts.c.email_hash == hashed, accounts.c.person_id != person_id
        )
    )
    return other is not None


async def set_password(
    conn: AsyncConnection,
    person_id: str,
    hashed: bytes | None,
    password_hash: str,
    now: datetime,
) -> None:
    """Give the person this password and sign-in address (its keyed hash
    ``hashed``; None keeps the account's), with or without an account yet;
    the caller asked :func:`address_taken` first."""
    values: dict[str, object] = {"password_hash": password_hash, "password_changed_at": now}
    if hashed is not None:
        values["email_hash"] = hashed
    changed = await conn.execute(
        update(accounts).where(accounts.c.person_id == person_id).values(**values)
    )
    if changed.rowcount == 0:
        await conn.execute(insert(accounts).values(person_id=person_id, created_at=now, **values))


async def rehash(engine: AsyncEngine, person_id: str, old: str, new: str) -> None:
    """Replace a hash made with older parameters, unless the password changed meanwhile."""
    async with engine.begin() as conn:
        await conn.execute(
            update(accounts)
            .where(accounts.c.person_id == person_id, accounts.c.password_hash == old)
            .values(password_hash=new)
        )


async def use_step(engine: AsyncEngine, person_id: str, step: int) -> bool:
    """Mark a one-time code's step used; False if it (or a later one) was, meanwhile."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(accounts)
            .where(
                accounts.c.person_id == person_id,
                or_(accounts.c.totp_used_step.is_(None), accounts.c.totp_used_step < step),
            )
            .values(totp_used_step=step)
        )
    return bool(result.rowcount)


async def set_pending_totp(engine: AsyncEngine, person_id: str, sealed: bytes) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            update(accounts).where(accounts.c.person_id == person_id).values(totp_pending=sealed)
        )


async def enable_totp(
    engine: AsyncEngine, person_id: str, pending: bytes, step: int, now: datetime
) -> bool:
    """Switch the pending secret on (the one its code was checked against)."""
    async with engine.begin() as conn:
        result = await conn.execute(
            update(accounts)
            .where(accounts.c.person_id == person_id, accounts.c.totp_pending == pending)
            .values(
                totp_sealed=pending, totp_pending=None, totp_enabled_at=now, totp_used_step=step
            )
        )
    return bool(result.rowcount)


async def disable_totp(engine: AsyncEngine, person_id: str) -> None:
    async with engine.begin() as conn:
        await reset_totp(conn, person_id)


async def reset_totp(conn: AsyncConnection, person_id: str) -> None:
    await conn.execute(
        update(accounts)
        .where(accounts.c.person_id == person_id)
        .values(totp_sealed=None, totp_pending=None, totp_enabled_at=None)
    )
