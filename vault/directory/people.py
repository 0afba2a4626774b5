"""People, their tokens and blocks; authentication; the policy's principal.

A person's name and e-mail address are sealed under their own key, their
address also kept as a keyed hash (vault/directory/sealing.py): the database
holds neither in clear. :func:`find_person_by_email` is the one way to find
a person by address; :func:`read_person` opens what is sealed.

Every token expires: an admin's or the command line's after
``auth.token_ttl_days``, a session after its role's hours
(:mod:`vault.accounts.sessions`). Its last use is kept to the minute, so a
busy client costs one write a minute, not one a call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import String, bindparam, func, insert, literal, select, union_all, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.db.reads import Reader
from vault.db.schema import (
    auth_failures,
    children,
    group_staff,
    guardians,
    installation,
    location_managers,
    people,
    tokens,
)
from vault.directory.sealing import PersonData, Sealer, email_hash
from vault.errors import Conflict, InvalidInput, NotFound
from vault.keys.provider import KeyProvider
from vault.policy import GuardianLink, Principal
from vault.tokens import NewToken, new_id, new_token, secret_matches

#: ``auth.token_ttl_days``' default, for callers without settings at hand.
DEFAULT_TOKEN_TTL = timedelta(days=365)
#: How stale ``last_used_at`` may get before a call writes it again.
LAST_USE_RESOLUTION = timedelta(minutes=1)


@dataclasses.dataclass(frozen=True)
class TokenInfo:
    """What authentication learns about a live token."""

    id: str
    person_id: str
    kind: str
    method: str | None
    second_factor: bool


@dataclasses.dataclass(frozen=True)
class NewPerson:
    """A person about to be stored: their id, sealed data and first token."""

    id: str
    role: str
    profile: bytes
    email_hash: bytes | None
    token: NewToken


async def prepare_person(sealer: Sealer, name: str, email: str | None, role: str) -> NewPerson:
    """Seal a new person's data (before any transaction: sealing may write the
    person's key row on a connection of its own)."""
    person_id = new_id()
    profile = await sealer.seal_person(person_id, PersonData(name, email))
    hashed = email_hash(sealer.provider, email) if email else None
    return NewPerson(person_id, role, profile, hashed, new_token())


async def store_person(
    conn: AsyncConnection,
    person: NewPerson,
    now: datetime,
    token_ttl: timedelta = DEFAULT_TOKEN_TTL,
) -> str:
    """Insert a prepared person and their first token on ``conn``; the token."""
    await conn.execute(
        insert(people).values(
            id=person.id,
            role=person.role,
            created_at=now,
            profile=person.profile,
            email_hash=person.email_hash,
        )
    )
    await store_token(conn, person.id, person.token, now, now + token_ttl)
    return person.token.token


async def create_person(
    engine: AsyncEngine,
    sealer: Sealer,
    name: str,
    email: str | None,
    role: str,
    now: datetime,
    *,
    token_ttl: timedelta = DEFAULT_TOKEN_TTL,
) -> tuple[str, str]:
    """Create a person with a first token; returns (person id, token)."""
    person = await prepare_person(sealer, name, email, role)
    async with engine.begin() as conn:
        token = await store_person(conn, person, now, token_ttl)
    return person.id, token


async def find_person_by_email(
    engine: AsyncEngine, provider: KeyProvider, email: str
) -> str | None:
    """The id of the one person whose address this is, by its keyed hash.

    None when no one has it, or more than one person does (an address that is
    not one person's signs no one in), and for people whose data is destroyed.
    Every look-up of a person by e-mail goes through here or
    :func:`people_with_email`.
    """
    async with engine.connect() as conn:
        ids = await people_with_email(conn, provider, email, limit=2)
    return ids[0] if len(ids) == 1 else None


async def people_with_email(
    conn: AsyncConnection, provider: KeyProvider, email: str, *, limit: int | None = None
) -> list[str]:
    """The ids of the people (not destroyed) whose address this is, by its
    keyed hash, in id order (single sign-on chooses among them by policy)."""
    query = (
        select(people.c.id)
        .where(
            people.c.email_hash == email_hash(provider, email),
            people.c.forgotten_at.is_(None),
        )
        .order_by(people.c.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [str(found) for found in (await conn.scalars(query)).all()]


async def email_of(engine: AsyncEngine, sealer: Sealer, person_id: str) -> str | None:
    """The person's address, opened; None without one or once destroyed.
    NotFound when there is no such person."""
    async with engine.connect() as conn:
        row = (await conn.execute(select(people.c.profile).where(people.c.id == person_id))).first()
    if row is None:
        raise NotFound("There is no person with this id.")
    data = await sealer.open_person(person_id, row.profile)
    return data.email if data is not None else None


@dataclasses.dataclass(frozen=True)
class PersonView:
    id: str
    role: str
    created_at: datetime
    blocked: bool
    #: None once their own data is destroyed.
    name: str | None
    email: str | None
    forgotten_at: datetime | None


async def read_person(engine: AsyncEngine, sealer: Sealer, person_id: str) -> PersonView:
    async with engine.connect() as conn:
        row = (await conn.execute(select(people).where(people.c.id == person_id))).first()
    if row is None:
        raise NotFound("There is no person with this id.")
    data = await sealer.open_person(person_id, row.profile)
    return PersonView(
        id=row.id,
        role=row.role,
        created_at=row.created_at,
        blocked=row.blocked_at is not None,
        name=data.name if data else None,
        email=data.email if data else None,
        forgotten_at=row.forgotten_at,
    )


async def names_of(engine: AsyncEngine, sealer: Sealer, ids: Iterable[str]) -> dict[str, str]:
    """The names of the people with these ids, opened; those destroyed are left out."""
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    async with engine.connect() as conn:
        rows = (
            await conn.execute(select(people.c.id, people.c.profile).where(people.c.id.in_(wanted)))
        ).all()
    out = {}
    for row in rows:
        data = await sealer.open_person(row.id, row.profile)
        if data is not None:
            out[row.id] = data.name
    return out


async def store_token(
    conn: AsyncConnection,
    person_id: str,
    token: NewToken,
    now: datetime,
    expires_at: datetime,
    **session: object,
) -> None:
    """Keep a token's hash; ``session`` holds a session's columns (kind, method, ...)."""
    await conn.execute(
        insert(tokens).values(
            id=token.id,
            person_id=person_id,
            token_hash=token.secret_hash,
            created_at=now,
            expires_at=expires_at,
            **session,
        )
    )


async def issue_token(
    engine: AsyncEngine, person_id: str, now: datetime, token_ttl: timedelta = DEFAULT_TOKEN_TTL
) -> str:
    """A new token; ``Conflict`` for a person whose own data was destroyed
    (vault/retention/people.py): they are no one to act as."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(people.c.forgotten_at).where(people.c.id == person_id))
        ).first()
    if row is None:
        raise NotFound("There is no person with this id.")
    if row.forgotten_at is not None:
        raise Conflict("This person's own data was destroyed; add them anew to give them a token.")
    token = new_token()
    async with engine.begin() as conn:
        await store_token(conn, person_id, token, now, now + token_ttl)
    return token.token


async def revoke_tokens(engine: AsyncEngine, person_id: str, now: datetime) -> int:
    await person_role(engine, person_id)
    async with engine.begin() as conn:
        result = await conn.execute(
            update(tokens)
            .where(tokens.c.person_id == person_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=now)
        )
    return int(result.rowcount)


async def person_role(engine: AsyncEngine, person_id: str) -> str:
    async with engine.connect() as conn:
        role = await conn.scalar(select(people.c.role).where(people.c.id == person_id))
    if role is None:
        raise NotFound("There is no person with this id.")
    return str(role)


async def require_role(engine: AsyncEngine, person_id: str, role: str, what: str) -> None:
    if await person_role(engine, person_id) != role:
        raise InvalidInput(f"The person to make {what} must have the role '{role}'.")


async def set_block(
    engine: AsyncEngine, sealer: Sealer, person_id: str, reason: str | None, now: datetime
) -> None:
    """Block (with a reason, sealed under the person's key) or unblock (None).

    A block ends the person's sessions for good (an unblocked person signs
    in again); tokens an admin issued answer ``blocked`` until the block is
    lifted, as before sessions existed.
    """
    await person_role(engine, person_id)
    sealed = await sealer.seal_block_reason(person_id, reason) if reason is not None else None
    async with engine.begin() as conn:
        await conn.execute(
            update(people)
            .where(people.c.id == person_id)
            .values(blocked_at=now if reason is not None else None, sealed_block_reason=sealed)
        )
        if reason is not None:
            await end_sessions(conn, person_id, now)


async def end_sessions(
    conn: AsyncConnection, person_id: str, now: datetime, *, keep: str | None = None
) -> int:
    """Revoke the person's live sessions (all but ``keep``); how many."""
    query = update(tokens).where(
        tokens.c.person_id == person_id,
        tokens.c.kind == "session",
        tokens.c.revoked_at.is_(None),
    )
    if keep is not None:
        query = query.where(tokens.c.id != keep)
    result = await conn.execute(query.values(revoked_at=now))
    return int(result.rowcount)


_TOKEN = select(
    tokens.c.person_id,
    tokens.c.token_hash,
    tokens.c.kind,
    tokens.c.method,
    tokens.c.second_factor,
    tokens.c.expires_at,
    tokens.c.last_used_at,
).where(tokens.c.id == bindparam("token_id"), tokens.c.revoked_at.is_(None))


async def authenticate(
    engine: AsyncEngine, token_id: str, secret: str, now: datetime
) -> TokenInfo | None:
    """What a live token (parsed by ``parse_token``) is, or None: unknown,
    revoked, expired or not matching. Its last use is noted (to the minute)."""
    async with engine.connect() as conn:
        row = (await conn.execute(_TOKEN, {"token_id": token_id})).first()
    if row is None or not secret_matches(secret, row.token_hash):
        return None
    if row.expires_at is None or row.expires_at <= now:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USE_RESOLUTION:
        async with engine.begin() as conn:
            await conn.execute(
                update(tokens).where(tokens.c.id == token_id).values(last_used_at=now)
            )
    return TokenInfo(
        id=token_id,
        person_id=str(row.person_id),
        kind=str(row.kind),
        method=row.method,
        second_factor=bool(row.second_factor),
    )


async def record_failure(
    engine: AsyncEngine,
    ip: str,
    user_agent: str | None,
    now: datetime,
    *,
    account: str | None = None,
) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            insert(auth_failures).values(
                id=new_id(),
                at=now,
                ip=ip[:64],
                user_agent=(user_agent or "")[:256] or None,
                account=account,
            )
        )


async def failures_since(
    engine: AsyncEngine, ip: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many failures from ``ip`` since ``since``, and the oldest of them."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.min(auth_failures.c.at)).where(
                    auth_failures.c.ip == ip[:64], auth_failures.c.at >= since
                )
            )
        ).one()
    return int(row[0]), row[1]


async def account_failures_since(
    engine: AsyncEngine, account: str, since: datetime
) -> tuple[int, datetime | None]:
    """How many failed sign-ins on ``account`` (from any address) since ``since``."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(func.count(), func.min(auth_failures.c.at)).where(
                    auth_failures.c.account == account, auth_failures.c.at >= since
                )
            )
        ).one()
    return int(row[0]), row[1]


_PERSON = select(people.c.role, people.c.blocked_at).where(people.c.id == bindparam("person_id"))
_NONE = literal(None, String)
#: Built once: a statement object memoises its cache key, so answering a link
#: does not rebuild and re-hash these on every request.
_MEMBERSHIPS = union_all(
    select(literal("group"), group_staff.c.group_id, _NONE, _NONE).where(
        group_staff.c.person_id == bindparam("person_id")
    ),
    select(literal("location"), location_managers.c.location_id, _NONE, _NONE).where(
        location_managers.c.person_id == bindparam("person_id")
    ),
    select(
        literal("guardian"), guardians.c.child_id, guardians.c.relation, guardians.c.household
    ).where(guardians.c.person_id == bindparam("person_id")),
    select(literal("mentor"), children.c.id, _NONE, _NONE).where(
        children.c.mentor_id == bindparam("person_id")
    ),
)


def principal_of(conn: Connection, person_id: str) -> Principal | None:
    """The policy's view of a person, in two queries; None if there is none."""
    person = conn.execute(_PERSON, {"person_id": person_id}).first()
    if person is None:
        return None
    found: dict[str, set[str]] = {"group": set(), "location": set(), "mentor": set()}
    links: dict[str, GuardianLink] = {}
    for kind, ident, relation, household in conn.execute(_MEMBERSHIPS, {"person_id": person_id}):
        if kind == "guardian":
            links[ident] = GuardianLink(relation, household)
        else:
            found[kind].add(ident)
    return Principal(
        id=person_id,
        role=person.role,
        blocked=person.blocked_at is not None,
        groups=frozenset(found["group"]),
        locations=frozenset(found["location"]),
        guardian_of=links,
        mentor_of=frozenset(found["mentor"]),
    )


async def load_principal(reader: Reader, person_id: str) -> Principal:
    principal = await reader(lambda conn: principal_of(conn, person_id))
    if principal is None:
        raise NotFound("There is no person with this id.")
    return principal


def window_start(now: datetime, seconds: int) -> datetime:
    return now - timedelta(seconds=seconds)


async def ensure_admin(
    engine: AsyncEngine, sealer: Sealer, now: datetime, token_ttl: timedelta = DEFAULT_TOKEN_TTL
) -> str | None:
    """Create the installation's admin account and return its first token
    (valid ``token_ttl``), or None if it exists (``kluis init``, which holds
    the installation lock)."""
    admin = select(installation.c.value).where(installation.c.key == "admin_person_id")
    async with engine.connect() as conn:
        if await conn.scalar(admin) is not None:
            return None
    # Sealed before the transaction: sealing writes the person's key row.
    person = await prepare_person(sealer, "Administrator", None, "admin")
    async with engine.begin() as conn:
        token = await store_person(conn, person, now, token_ttl)
        await conn.execute(
            insert(installation).values(
                [
                    {"key": "admin_person_id", "value": person.id},
                    {"key": "installation_id", "value": new_id()},
                    {"key": "initialised_at", "value": now.isoformat()},
                ]
            )
        )
    return token
