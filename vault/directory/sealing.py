"""Directory text sealed at rest, and the step that seals what was stored in clear.

A backup reader must not read who is who. So (issue 18 item 4):

* a **person's own data** (name, e-mail address) is sealed under a key of
  their own: a child-key row of category ``person`` (child id = the person's
  id), kept and rotated in the epochs like a child's keys, so destroying it
  (the account lifecycle, vault/retention/people.py) reaches backups once
  the backup window has passed; the block reason is sealed under it too;
* an **e-mail address** is also kept as a keyed hash (HMAC-SHA256 under the
  key provider's ``email`` MAC key, of the trimmed, lower-cased address), the
  one way to find a person by address (:func:`vault.directory.people.find_person_by_email`);
* **location and group names** are no one's: sealed under the provider's
  ``directory`` master key, associated data naming table and row, as
  vault/keys/signing.py seals the signing secrets;
* a **child's** text (hold and restriction reasons, the privacy officer's
  access reasons, notes of requests about a child) is sealed under the
  child's profile key, and dies with it.

:func:`seal_existing` is ``kluis init``'s step between migrations 0014 and
0014a: it seals every row still in clear, under the installation lock.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.crypto._primitives import encode_parts
from vault.db.schema import child_keys
from vault.errors import Destroyed
from vault.keys.provider import DIRECTORY_KEY, EMAIL_MAC, KeyProvider
from vault.keys.service import KeyDestroyed, KeyService

#: The category of a person's own key (in table child_keys).
PERSON = "person"
#: A child's profile key (vault/directory/children.py).
PROFILE = "profile"


@dataclasses.dataclass(frozen=True)
class PersonData:
    name: str
    email: str | None


def normalised_email(email: str) -> str:
    return email.strip().lower()


def email_hash(provider: KeyProvider, email: str) -> bytes:
    """The keyed hash a person is found by (the address trimmed, lower case)."""
    return provider.mac(EMAIL_MAC, b"kluis-email-v1\n" + normalised_email(email).encode())


class Sealer:
    """Seals and opens directory text; cheap to make (it holds no state)."""

    def __init__(self, engine: AsyncEngine, keys: KeyService, provider: KeyProvider) -> None:
        self.engine = engine
        self.keys = keys
        self.provider = provider

    # -- people -------------------------------------------------------------

    async def seal_person(self, person_id: str, data: PersonData) -> bytes:
        raw = json.dumps({"name": data.name, "email": data.email}).encode("utf-8")
        return await self.seal_owned(person_id, PERSON, f"person:{person_id}", raw)

    async def open_person(self, person_id: str, sealed: bytes | None) -> PersonData | None:
        """The person's name and address; None once they are destroyed."""
        if sealed is None:
            return None
        try:
            raw = await self.keys.open_value(person_id, PERSON, f"person:{person_id}", sealed)
        except KeyDestroyed:
            return None
        data = json.loads(raw)
        return PersonData(data["name"], data["email"])

    async def seal_block_reason(self, person_id: str, reason: str) -> bytes:
        return await self.seal_owned(
            person_id, PERSON, f"person-block:{person_id}", reason.encode("utf-8")
        )

    # -- places -------------------------------------------------------------

    async def seal_place(self, table: str, row_id: str, name: str) -> bytes:
        return await self.provider.wrap(DIRECTORY_KEY, name.encode("utf-8"), _place(table, row_id))

    async def open_place(self, table: str, row_id: str, sealed: bytes) -> str:
        raw = await self.provider.unwrap(DIRECTORY_KEY, sealed, _place(table, row_id))
        return raw.decode("utf-8")

    # -- a child's text -----------------------------------------------------

    async def seal_for_child(self, child_id: str, label: str, value: str) -> bytes:
        return await self.seal_owned(child_id, PROFILE, label, value.encode("utf-8"))

    async def open_for_child(self, child_id: str, label: str, sealed: bytes) -> str | None:
        """The text; None once the child's profile key is destroyed."""
        try:
            return (await self.keys.open_value(child_id, PROFILE, label, sealed)).decode("utf-8")
        except KeyDestroyed:
            return None

    async def seal_owned(self, owner: str, category: str, label: str, value: bytes) -> bytes:
        """Seal under the owner's key of ``category``, made if they never had one;
        ``Destroyed`` if it was destroyed (nothing new is kept of them then)."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(child_keys.c.destroyed_at).where(
                        child_keys.c.child_id == owner, child_keys.c.category == category
                    )
                )
            ).all()
        if rows and all(row.destroyed_at is not None for row in rows):
            raise Destroyed("Their data was destroyed; nothing new is kept of them.")
        return await self.keys.seal_value(owner, category, label, value)


def _place(table: str, row_id: str) -> bytes:
    return encode_parts(b"kluis-directory-v1", table, row_id)


def first_name(name: str | None) -> str:
    return (name or "").strip().split(" ", 1)[0]


# -- sealing what was stored in clear (kluis init, between 0014 and 0014a) -------


@dataclasses.dataclass
class Sealed:
    people: int = 0
    places: int = 0
    holds: int = 0

    @property
    def total(self) -> int:
        return self.people + self.places + self.holds


async def seal_existing(sealer: Sealer) -> Sealed:
    """Seal every row migration 0014 left in clear; idempotent, row by row.

    Runs at revision 0014 only (the clear columns are gone after 0014a), so
    it names them in SQL of its own rather than through vault.db.schema.
    """
    done = Sealed()
    engine = sealer.engine
    async with engine.connect() as conn:
        if not await _has_column(conn, "people", "name"):
            return done
        people = (
            await conn.execute(
                text(
                    "SELECT id, name, email, block_reason FROM people "
                    "WHERE profile IS NULL OR (block_reason IS NOT NULL "
                    "AND sealed_block_reason IS NULL)"
                )
            )
        ).all()
        places = {
            table: (
                await conn.execute(
                    text(f"SELECT id, name FROM {table} WHERE sealed_name IS NULL")  # noqa: S608
                )
            ).all()
            for table in ("locations", "care_groups")
        }
        held = (
            await conn.execute(
                text("SELECT id, child_id, reason FROM holds WHERE sealed_reason IS NULL")
            )
        ).all()
    for row in people:
        values: dict[str, Any] = {
            "id": row.id,
            "profile": await sealer.seal_person(row.id, PersonData(row.name, row.email)),
            "hash": email_hash(sealer.provider, row.email) if row.email else None,
            "block": (
                await sealer.seal_block_reason(row.id, row.block_reason)
                if row.block_reason
                else None
            ),
        }
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE people SET profile = :profile, email_hash = :hash, "
                    "sealed_block_reason = :block WHERE id = :id"
                ),
                values,
            )
        done.people += 1
    for table, rows in places.items():
        for row in rows:
            sealed = await sealer.seal_place(table, row.id, row.name)
            async with engine.begin() as conn:
                await conn.execute(
                    text(f"UPDATE {table} SET sealed_name = :sealed WHERE id = :id"),  # noqa: S608
                    {"sealed": sealed, "id": row.id},
                )
            done.places += 1
    for row in held:
        try:
            sealed = await sealer.seal_for_child(row.child_id, f"hold:{row.id}", row.reason)
        except Destroyed:
            continue  # the child's records are destroyed: the reason goes with the column
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE holds SET sealed_reason = :sealed WHERE id = :id"),
                {"sealed": sealed, "id": row.id},
            )
        done.holds += 1
    return done


#: The tables whose clear columns migrations 0014a and 0017a drop.
SEALED_TABLES = ("people", "locations", "care_groups", "holds", "accounts")


async def compact(engine: AsyncEngine) -> None:
    """Rewrite the tables whose clear text was dropped, after 0014a or 0017a.

    Dropping a column does not erase its bytes: SQLite leaves them in free
    pages (and its write-ahead log), PostgreSQL in the rows themselves (a
    dropped column is only marked so) and in the old row versions the
    sealing left. ``VACUUM`` (SQLite, then a checkpoint that empties the
    log) and ``VACUUM FULL`` of those tables (PostgreSQL) rewrite them, so a
    copy of the database files taken afterwards holds none of it.
    """
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        if conn.dialect.name == "sqlite":
            await conn.execute(text("VACUUM"))
            await conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
        else:
            await conn.execute(text(f"VACUUM FULL {', '.join(SEALED_TABLES)}"))


async def _has_column(conn: Any, table: str, column: str) -> bool:
    def check(sync: Any) -> bool:
        from sqlalchemy import inspect

        return column in {c["name"] for c in inspect(sync).get_columns(table)}

    found: bool = await conn.run_sync(check)
    return found
