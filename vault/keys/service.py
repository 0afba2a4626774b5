"""Child keys (DEKs) and item keys, kept wrapped in the database.

* A **child key** exists per (child, category) and is wrapped by the master
  key of one epoch (:mod:`vault.crypto.epochs`), with associated data naming
  its row, child, category and epoch.
* An **item key** is random per item and wrapped under the child key of every
  child the item belongs to, with associated data naming item, child and
  category. A group photo stays readable while any of its children's keys
  lives; when the last is destroyed, nothing can open it.

Keys are unwrapped in memory for one operation and travel only as handles
(:class:`~vault.crypto.handles.ChildKey`, :class:`~vault.crypto.handles.ItemKey`);
the formats are :mod:`vault.crypto.envelope`'s. Destroying a child key clears
its wrapped bytes and deletes the item-key rows under it; the row itself stays
as the record of the destruction.

Two times: the service's clock is the process's own (the real time in
production), and decides which live epoch is current; a ``now`` passed in
(``kluis retention run --now``) moves only the schedule, never the live epoch
a running server writes new keys into.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.exc import IntegrityError as RowConflict
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.audit import event
from vault.audit.log import AuditLog
from vault.crypto._primitives import IntegrityError, encode_parts
from vault.crypto.envelope import (
    new_child_key,
    new_item_key,
    open_value,
    seal_value,
    unwrap_child_key,
    unwrap_item_key,
    wrap_child_key,
    wrap_item_key,
)
from vault.crypto.handles import ChildKey, ItemKey
from vault.db import locks
from vault.db.idsets import among
from vault.db.schema import child_keys, item_children, item_keys, items
from vault.errors import Destroyed
from vault.keys import epochs
from vault.keys.local import LocalKeyring
from vault.keys.provider import EpochDestroyed, KeyProvider
from vault.tokens import new_id

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]

#: Taken in every transaction that destroys child keys (:func:`vault.db.locks.in_transaction`).
DESTRUCTION_LOCK = "key-destruction"


def utcnow() -> datetime:
    return datetime.now(UTC)


class KeyDestroyed(Destroyed):
    """Every key that could open the item was destroyed (retention or erasure)."""


@dataclasses.dataclass(frozen=True)
class PreparedItemKey:
    key: ItemKey
    rows: list[dict[str, Any]] = dataclasses.field(repr=False)


@dataclasses.dataclass(frozen=True)
class DestroyedChildKey:
    id: str
    child_id: str
    category: str
    epoch: str
    item_keys: int
    #: (item id, size) of this child's items of this category that no key
    #: opens any more since, marked destroyed with the key.
    items: list[tuple[str, int]] = dataclasses.field(default_factory=list)
    #: Ids of this child's other records of this category (group photos):
    #: no longer this child's, they stay for the other children they show, or
    #: went with another child's key destroyed with this one (and are in its
    #: ``items``).
    shares: list[str] = dataclasses.field(default_factory=list)


#: Writes the destruction certificates of child keys in the transaction that
#: destroys them (vault/retention/job.py, ``certifier``).
Certify = Callable[[AsyncConnection, list[DestroyedChildKey]], Awaitable[None]]


def _dek_aad(dek_id: str, child_id: str, category: str, epoch: str) -> bytes:
    return encode_parts(b"kluis-dek-v1", dek_id, child_id, category, epoch)


def _item_aad(item_id: str, child_id: str, category: str) -> bytes:
    return encode_parts(b"kluis-item-key-v1", item_id, child_id, category)


def _value_aad(child_id: str, category: str, label: str) -> bytes:
    return encode_parts(b"kluis-value-v1", child_id, category, label)


class KeyService:
    """Child and item keys. Every rewrap and destruction is on the audit record,
    written in the same transaction as the change (or, for a batch, before it)."""

    def __init__(
        self, engine: AsyncEngine, provider: KeyProvider, audit: AuditLog, clock: Clock = utcnow
    ) -> None:
        self._engine = engine
        self._provider = provider
        self.audit = audit
        self.clock = clock
        #: Master keys known to exist (a destroyed one still fails at use).
        self._masters: set[str] = set()

    # -- master keys --------------------------------------------------------

    async def ensure_master(self, name: str, now: datetime) -> None:
        """Create the master key ``name`` unless it exists, once across every
        process on this database (a token has no "create if absent")."""
        if name in self._masters:
            return
        async with self._engine.begin() as conn:
            await locks.in_transaction(conn, "master-keys")
            await self._provider.create_key(name, now)
        self._masters.add(name)

    # -- child keys ---------------------------------------------------------

    def target_epoch_name(self, destroy_on: date | None, now: datetime) -> str:
        """The epoch a child key due on ``destroy_on`` belongs in at ``now``
        (None: the live epoch of the service's own clock)."""
        if destroy_on is None:
            return epochs.live(self.clock()).name
        target = epochs.shred(destroy_on)
        if target.month_end <= now:
            # The destruction date has passed: its month's epoch may already be
            # gone. The current month's shred epoch dies soonest after now.
            target = epochs.shred(now.date())
        return target.name

    async def _target_epoch(self, destroy_on: date | None, now: datetime) -> str:
        name = self.target_epoch_name(destroy_on, now)
        await self.ensure_master(name, now)
        return name

    async def live_child_keys(self, child_id: str) -> dict[str, Row[Any]]:
        """The child's live child keys by category."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(child_keys).where(
                        child_keys.c.child_id == child_id, child_keys.c.destroyed_at.is_(None)
                    )
                )
            ).all()
        return {row.category: row for row in rows}

    async def ensure_child_key(
        self, child_id: str, category: str, *, destroy_on: date | None = None
    ) -> str:
        """The id of the live child key for (child, category), created if missing."""
        return str((await self._ensure_row(child_id, category, destroy_on)).id)

    async def _ensure_row(
        self, child_id: str, category: str, destroy_on: date | None = None
    ) -> Row[Any]:
        existing = await self._live_row(child_id, category)
        if existing is not None:
            return existing
        now = self.clock()
        epoch = await self._target_epoch(destroy_on, now)
        dek_id = new_id()
        wrapped = await wrap_child_key(
            self._provider, epoch, new_child_key(), _dek_aad(dek_id, child_id, category, epoch)
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(child_keys).values(
                        id=dek_id,
                        child_id=child_id,
                        category=category,
                        epoch=epoch,
                        wrapped=wrapped,
                        created_at=now,
                        wrapped_at=now,
                    )
                )
        except RowConflict:
            pass  # another request created it first; use theirs
        row = await self._live_row(child_id, category)
        if row is None:
            raise KeyDestroyed()  # destroyed in the meantime
        return row

    async def _live_row(self, child_id: str, category: str) -> Row[Any] | None:
        """The live (not destroyed) child key row of (child, category), if any."""
        async with self._engine.connect() as conn:
            result = await conn.execute(
                select(child_keys).where(
                    child_keys.c.child_id == child_id,
                    child_keys.c.category == category,
                    child_keys.c.destroyed_at.is_(None),
                )
            )
            return result.first()

    async def _unwrap_dek(self, row: Row[Any]) -> ChildKey:
        if row.wrapped is None:
            raise KeyDestroyed()
        return await unwrap_child_key(
            self._provider,
            row.epoch,
            row.wrapped,
            _dek_aad(row.id, row.child_id, row.category, row.epoch),
        )

    async def schedule_child_key(
        self, child_id: str, category: str, destroy_on: date | None, now: datetime | None = None
    ) -> str | None:
        """Move the child key into the epoch its destruction date calls for at
        ``now`` (default: the service's clock).

        ``None`` (the contract runs again, or a hold) moves it back to the live
        epoch. Returns the epoch it is in now, or None if there is no live key.
        """
        now = now or self.clock()
        row = await self._live_row(child_id, category)
        if row is None:
            return None
        target = await self._target_epoch(destroy_on, now)
        if row.epoch != target:
            await self._rewrap(row, target, now)
        return target

    async def _rewrap(self, row: Row[Any], target: str, now: datetime) -> bool:
        """Rewrap one child key under ``target``; False if it changed meanwhile."""
        dek = await self._unwrap_dek(row)
        wrapped = await wrap_child_key(
            self._provider, target, dek, _dek_aad(row.id, row.child_id, row.category, target)
        )
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(child_keys)
                .where(
                    child_keys.c.id == row.id,
                    child_keys.c.epoch == row.epoch,
                    child_keys.c.destroyed_at.is_(None),
                )
                .values(epoch=target, wrapped=wrapped, wrapped_at=now)
            )
            if result.rowcount:
                await self.audit.append_in(
                    conn,
                    event(
                        "key.rewrap",
                        children=[row.child_id],
                        category=row.category,
                        key=row.id,
                        source=row.epoch,
                        target=target,
                    ),
                )
        return bool(result.rowcount)

    async def rewrap_epoch(
        self,
        source: str,
        target: str,
        *,
        batch: int = 500,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Rewrap every live child key of ``source`` under ``target``; returns the count."""
        now = self.clock()
        await self.ensure_master(target, now)
        done = 0
        while True:
            async with self._engine.connect() as conn:
                rows = (
                    await conn.execute(
                        select(child_keys)
                        .where(child_keys.c.epoch == source, child_keys.c.destroyed_at.is_(None))
                        .order_by(child_keys.c.id)
                        .limit(batch)
                    )
                ).all()
            if not rows:
                return done
            updates = []
            for row in rows:
                dek = await self._unwrap_dek(row)
                wrapped = await wrap_child_key(
                    self._provider,
                    target,
                    dek,
                    _dek_aad(row.id, row.child_id, row.category, target),
                )
                updates.append({"b_id": row.id, "b_wrapped": wrapped})
            async with self._engine.begin() as conn:
                await self.audit.append_in(
                    conn, event("keys.rewrap", count=len(rows), source=source, target=target)
                )
                await conn.execute(
                    update(child_keys)
                    .where(
                        child_keys.c.id == bindparam("b_id"),
                        child_keys.c.epoch == source,
                        child_keys.c.destroyed_at.is_(None),
                    )
                    .values(epoch=target, wrapped=bindparam("b_wrapped"), wrapped_at=now),
                    updates,
                )
            done += len(rows)
            if progress is not None:
                progress(len(rows))

    async def destroy_child_key(
        self, child_id: str, category: str, certify: Certify
    ) -> DestroyedChildKey | None:
        """Destroy the live child key of (child, category) and the item keys
        under it; ``certify``: as in :meth:`destroy_epoch_keys`."""
        row = await self._live_row(child_id, category)
        if row is None:
            return None
        destroyed = await self._destroy_rows([row.id], self.clock(), certify)
        return destroyed[0] if destroyed else None

    async def destroy_epoch_keys(self, epoch: str, certify: Certify) -> list[DestroyedChildKey]:
        """Mark every child key of a destroyed epoch as destroyed, with what
        went with it. ``certify`` writes their destruction certificates in
        the transaction that destroys them (vault/retention/job.py,
        ``certifier``): a run stopped anywhere leaves each key either live
        (the next run destroys and certifies it) or destroyed and certified,
        never destroyed without its certificate. It is required here and in
        every destroyer (:meth:`destroy_child_key`, :meth:`destroy_in` for
        the retention job's batches), so no caller can forget it."""
        async with self._engine.connect() as conn:
            ids = (
                await conn.scalars(
                    select(child_keys.c.id).where(
                        child_keys.c.epoch == epoch, child_keys.c.destroyed_at.is_(None)
                    )
                )
            ).all()
        now = self.clock()
        out: list[DestroyedChildKey] = []
        for start in range(0, len(ids), 500):
            out += await self._destroy_rows(list(ids[start : start + 500]), now, certify)
        return out

    async def _destroy_rows(
        self, ids: list[str], now: datetime, certify: Certify
    ) -> list[DestroyedChildKey]:
        """:meth:`destroy_in` in a transaction of its own, with ``certify``.

        Under the lock every destroyer takes (the retention batches too): two
        processes destroying the same keys at once (a rotation beside a
        retention run) cannot both read them live, so each is certified once.
        """
        async with self._engine.begin() as conn:
            await locks.in_transaction(conn, DESTRUCTION_LOCK)
            return await self.destroy_in(conn, ids, now, certify)

    async def destroy_in(
        self, conn: AsyncConnection, ids: Sequence[str], now: datetime, certify: Certify
    ) -> list[DestroyedChildKey]:
        """Destroy child keys, the item keys under them, and mark the items that no
        key opens any more as destroyed, in the caller's transaction (keys first:
        a crash after its commit leaves nothing that opens), with ``certify``
        writing their certificates in it. Set-based: a few statements for any
        number of keys (a retention batch), whatever the number of items under
        them, each id set one parameter (:func:`vault.db.idsets.among`)."""
        rows = (
            await conn.execute(
                select(child_keys).where(
                    among(conn, child_keys.c.id, ids), child_keys.c.destroyed_at.is_(None)
                )
            )
        ).all()
        if not rows:
            return []
        live = [row.id for row in rows]
        counted = await conn.execute(
            select(item_keys.c.child_key_id, func.count())
            .where(among(conn, item_keys.c.child_key_id, live))
            .group_by(item_keys.c.child_key_id)
        )
        counts = {key_id: int(n) for key_id, n in counted.all()}
        # Before the item keys go: the items whose every key is one of these,
        # with the children they belong to; and each child's share in the
        # records of its kind these keys open (a group photo: the others keep it).
        gone = await _unopenable_without(conn, live)
        shared = await _shares_of(conn, live)
        await self.audit.append_in(
            conn,
            *(
                event(
                    "key.destroy",
                    children=[row.child_id],
                    category=row.category,
                    key=row.id,
                    epoch=row.epoch,
                    item_keys=counts.get(row.id, 0),
                )
                for row in rows
            ),
        )
        await conn.execute(
            update(item_children)
            .where(item_children.c.destroyed_at.is_(None), _wrapped_under(conn, live))
            .values(destroyed_at=now)
        )
        await conn.execute(delete(item_keys).where(among(conn, item_keys.c.child_key_id, live)))
        await conn.execute(
            update(child_keys)
            .where(among(conn, child_keys.c.id, live), child_keys.c.destroyed_at.is_(None))
            .values(wrapped=None, destroyed_at=now)
        )
        if gone:
            await conn.execute(
                update(items).where(among(conn, items.c.id, gone)).values(destroyed_at=now)
            )
        # Each gone item goes with one destroyed key: of the children whose
        # keys went here, the last by id, as when the keys are destroyed one
        # child at a time in id order (a group photo is destroyed with the
        # last of its children's keys, and certified once).
        here = {(row.child_id, row.category) for row in rows}
        owned: dict[tuple[str, str], list[tuple[str, int]]] = {}
        for item_id, (kind, size, owners) in gone.items():
            last = max((owner for owner in owners if (owner, kind) in here), default=None)
            if last is not None:
                owned.setdefault((last, kind), []).append((item_id, size))
        destroyed = [
            DestroyedChildKey(
                id=row.id,
                child_id=row.child_id,
                category=row.category,
                epoch=row.epoch,
                item_keys=counts.get(row.id, 0),
                items=(mine := owned.get((row.child_id, row.category), [])),
                shares=sorted(shared.get(row.id, set()) - {item for item, _ in mine}),
            )
            for row in rows
        ]
        await certify(conn, destroyed)
        return destroyed

    # -- item keys ----------------------------------------------------------

    async def create_item_key(self, item_id: str, owners: Sequence[tuple[str, str]]) -> ItemKey:
        """A new random item key, wrapped under the child key of each owner, stored now."""
        prepared = await self.prepare_item_key(item_id, owners)
        async with self._engine.begin() as conn:
            await self.commit_item_key(prepared, conn)
        return prepared.key

    async def prepare_item_key(
        self, item_id: str, owners: Sequence[tuple[str, str]]
    ) -> PreparedItemKey:
        """A new random item key, wrapped under the child key of each owner.

        Nothing is written: :meth:`commit_item_key` stores the wrappings on the
        caller's connection, in the transaction that writes the item's row, so
        an upload that fails leaves no key behind.
        """
        if not owners:
            raise ValueError("an item belongs to at least one child")
        return await self.wrap_item_key_for(item_id, new_item_key(), owners)

    async def wrap_item_key_for(
        self, item_id: str, key: ItemKey, owners: Sequence[tuple[str, str]]
    ) -> PreparedItemKey:
        """``key`` wrapped under the child key of each owner (a child tagged in
        a record later); nothing written, as :meth:`prepare_item_key`."""
        rows = []
        for child_id, category in dict.fromkeys(owners):
            dek_row = await self._ensure_row(child_id, category)
            dek = await self._unwrap_dek(dek_row)
            rows.append(
                {
                    "item_id": item_id,
                    "child_key_id": dek_row.id,
                    "wrapped": wrap_item_key(dek, key, _item_aad(item_id, child_id, category)),
                }
            )
        return PreparedItemKey(key, rows)

    async def commit_item_key(self, prepared: PreparedItemKey, conn: AsyncConnection) -> None:
        await conn.execute(insert(item_keys), prepared.rows)

    def write_item_key(self, prepared: PreparedItemKey, conn: Connection) -> None:
        """:meth:`commit_item_key` on a synchronous connection (a group commit's change)."""
        conn.execute(insert(item_keys), prepared.rows)

    async def destroy_item_key(self, item_id: str) -> int:
        """Delete every wrapping of the item's key (the item becomes unreadable)."""
        async with self._engine.begin() as conn:
            owners = (
                await conn.scalars(
                    # Only the children whose record it still is (a destroyed share: no more).
                    select(item_children.c.child_id).where(
                        item_children.c.item_id == item_id, item_children.c.destroyed_at.is_(None)
                    )
                )
            ).all()
            await self.audit.append_in(
                conn, event("item_key.destroy", children=owners, item=item_id)
            )
            result = await conn.execute(delete(item_keys).where(item_keys.c.item_id == item_id))
        return int(result.rowcount)

    async def open_item_key(self, item_id: str) -> ItemKey:
        """Unwrap the item key through any of its children's live keys.

        ``KeyDestroyed`` when no live child key (or its epoch) remains;
        ``IntegrityError`` when a stored wrapping was tampered with.
        """
        async with self._engine.connect() as conn:
            rows = await conn.run_sync(lambda sync: item_key_rows(sync, item_id))
        return await self.unwrap_item_key(item_id, rows)

    async def unwrap_item_key(self, item_id: str, rows: Sequence[Row[Any]]) -> ItemKey:
        """The item key from rows of :func:`item_key_rows` read by the caller."""
        return (await self.unwrap_item_key_from(item_id, rows))[0]

    async def unwrap_item_key_from(
        self, item_id: str, rows: Sequence[Row[Any]]
    ) -> tuple[ItemKey, str]:
        """The item key from rows of :func:`item_key_rows`, and the name of the
        master key it was opened through (for :meth:`master_usable`)."""
        tampered = False
        for row in rows:
            try:
                dek = await self._unwrap_dek(row)
                key = unwrap_item_key(
                    dek, row.item_wrapped, _item_aad(item_id, row.child_id, row.category)
                )
                return key, str(row.epoch)
            except (EpochDestroyed, KeyDestroyed):
                continue
            except IntegrityError:
                tampered = True
        if tampered:
            raise IntegrityError()
        raise KeyDestroyed()

    async def master_usable(self, name: str) -> bool:
        """Whether the master key ``name`` still exists at this moment, where the
        provider can tell at the cost of a ``stat`` (the local keyring, whose
        file another process's destruction rewrites); False where it cannot tell
        cheaply (an HSM): a caller keeping an opened key then keeps none."""
        if isinstance(self._provider, LocalKeyring):
            return await self._provider.usable(name)
        return False

    # -- small values sealed directly under a child key --------------------

    async def seal_value(self, child_id: str, category: str, label: str, value: bytes) -> bytes:
        """Seal a small record (a profile, a caption) under the child's key.

        ``label`` names the record (its table and id); the sealed bytes open
        only under the same child, category and label, and die with the key.
        """
        dek = await self._unwrap_dek(await self._ensure_row(child_id, category))
        return seal_value(dek, value, _value_aad(child_id, category, label))

    async def open_value(self, child_id: str, category: str, label: str, sealed: bytes) -> bytes:
        row = await self._live_row(child_id, category)
        if row is None:
            raise KeyDestroyed()
        dek = await self._unwrap_dek(row)
        return open_value(dek, sealed, _value_aad(child_id, category, label))

    async def item_owners(self, item_id: str) -> list[tuple[str, str]]:
        """(child, category) of each live key under which the item key is wrapped."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(child_keys.c.child_id, child_keys.c.category)
                    .join(item_keys, item_keys.c.child_key_id == child_keys.c.id)
                    .where(item_keys.c.item_id == item_id, child_keys.c.destroyed_at.is_(None))
                )
            ).all()
        return [(r.child_id, r.category) for r in rows]

    async def epoch_usage(self) -> dict[str, int]:
        """Live child keys per epoch name."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(child_keys.c.epoch, func.count())
                    .where(child_keys.c.destroyed_at.is_(None))
                    .group_by(child_keys.c.epoch)
                )
            ).all()
        return {epoch: int(count) for epoch, count in rows}


async def _unopenable_without(
    conn: AsyncConnection, key_ids: list[str]
) -> dict[str, tuple[str, int, set[str]]]:
    """The live items that no key opens once the child keys ``key_ids`` are
    gone (each of their item keys is under one of these), as id -> (kind,
    size, the children they belong to): one statement, read before the item
    keys are deleted."""
    other_key = exists().where(
        item_keys.c.item_id == items.c.id, ~among(conn, item_keys.c.child_key_id, key_ids)
    )
    touched = select(item_keys.c.item_id).where(among(conn, item_keys.c.child_key_id, key_ids))
    found = await conn.execute(
        select(items.c.id, items.c.kind, items.c.size, item_children.c.child_id)
        .outerjoin(item_children, item_children.c.item_id == items.c.id)
        .where(items.c.id.in_(touched), items.c.destroyed_at.is_(None), ~other_key)
    )
    out: dict[str, tuple[str, int, set[str]]] = {}
    for item_id, kind, size, child_id in found.all():
        entry = out.setdefault(item_id, (kind, int(size), set()))
        if child_id is not None:
            entry[2].add(child_id)
    return out


def _wrapped_under(conn: AsyncConnection, key_ids: list[str]) -> Any:
    """An ``item_children`` row whose item key is wrapped under one of the
    child keys ``key_ids`` of that same child."""
    return (
        select(item_keys.c.item_id)
        .join(child_keys, child_keys.c.id == item_keys.c.child_key_id)
        .where(
            item_keys.c.item_id == item_children.c.item_id,
            child_keys.c.child_id == item_children.c.child_id,
            among(conn, item_keys.c.child_key_id, key_ids),
        )
        .exists()
    )


async def _shares_of(conn: AsyncConnection, key_ids: list[str]) -> dict[str, set[str]]:
    """The live records each of the child keys ``key_ids`` opens, by key id."""
    found = await conn.execute(
        select(item_keys.c.child_key_id, item_keys.c.item_id)
        .join(items, items.c.id == item_keys.c.item_id)
        .where(among(conn, item_keys.c.child_key_id, key_ids), items.c.destroyed_at.is_(None))
    )
    out: dict[str, set[str]] = {}
    for key_id, item_id in found.all():
        out.setdefault(key_id, set()).add(item_id)
    return out


_ITEM_KEY_ROWS = (
    select(item_keys.c.wrapped.label("item_wrapped"), child_keys)
    .join(child_keys, item_keys.c.child_key_id == child_keys.c.id)
    .where(and_(item_keys.c.item_id == bindparam("item_id"), child_keys.c.destroyed_at.is_(None)))
    .order_by(child_keys.c.id)
)


def item_key_rows(conn: Connection, item_id: str) -> Sequence[Row[Any]]:
    """The item key's wrappings under live child keys, for :meth:`unwrap_item_key`."""
    return conn.execute(_ITEM_KEY_ROWS, {"item_id": item_id}).all()
