"""The retention job, holds, and destruction by category.

``Retention.run`` is safe to run often and to interrupt: every step looks at
the current state. It takes the children in batches (``retention.
batch_children``, in id order). For each child of a batch it puts each live
child key in the epoch its schedule calls for (the shred epoch of the month
it is due, after the grace period; the live epoch while the contract runs or
a hold is open). Then, in **one transaction for the batch**, it reads the
holds and end dates again, destroys the keys still due, marks the items that
no live key opens any more as destroyed (set-based statements, whatever the
number of children), and writes the ``key.destroy`` audit events and a
destruction certificate per child and category. After that commit it deletes
the batch's blobs in a few bounded, parallel calls, while the next batch's
database work runs; the next batch waits for them before it commits and
removes their rows in its transaction (vault/retention/blobs.py). A blob
that cannot be deleted now, or one left by a run killed after the commit,
has only a destroyed item's ciphertext in it: the orphan sweeper removes it.
Last, it destroys the master keys of expired epochs.

So a run killed anywhere leaves each child either wholly destroyed (keys
gone, items marked, certificate and audit events written) or untouched and
still due; the next run does the rest.

One run at a time, across every process on the database: the run holds a
lock its process's death releases at once (:func:`vault.db.locks.held`), so a
killed run never wedges the next, whatever ``now`` either was given. A run
told another ``now`` than the clock's (``--now``, to catch up or to test)
moves the schedule, never the live epoch running servers write into.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from vault.audit import event
from vault.config import Settings
from vault.db import locks
from vault.db.idsets import among
from vault.db.schema import (
    child_keys,
    children,
    destruction_certificates,
    holds,
    item_children,
    item_keys,
    items,
)
from vault.items.service import delete_blobs
from vault.keys.provider import KeyProvider
from vault.keys.rotation import destroy_expired
from vault.keys.service import DESTRUCTION_LOCK, Certify, DestroyedChildKey, KeyService
from vault.policy import KINDS, Child, Phase, Rules, phase
from vault.retention.blobs import BlobsBehind
from vault.retention.certificates import backups_dark_at
from vault.retention.people import CAUSE as PERSON_CAUSE
from vault.retention.people import forget_people
from vault.retention.schedule import CategorySchedule, schedule
from vault.storage import BlobStore
from vault.tokens import new_id

log = logging.getLogger(__name__)
LOCK = "retention"
BUSY = "Another retention run is under way; try again when it has finished."


@dataclasses.dataclass
class Report:
    run_id: str
    dry_run: bool
    archived: int = 0
    rewrapped: int = 0
    held: int = 0
    destroyed: dict[str, int] = dataclasses.field(default_factory=dict)
    epochs_destroyed: list[str] = dataclasses.field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "archived": self.archived,
            "rewrapped": self.rewrapped,
            "held": self.held,
            # Records by kind (API.md); a child's profile key has no records of its own.
            "destroyed": {k: n for k, n in sorted(self.destroyed.items()) if k in KINDS},
            "epochs_destroyed": self.epochs_destroyed,
        }


@dataclasses.dataclass(frozen=True)
class Destruction:
    erased: bool
    items: int = 0
    bytes: int = 0


@dataclasses.dataclass(frozen=True)
class Plan:
    """What a child's schedule asks of its live keys now."""

    #: Live key rows due for destruction.
    due: list[Row[Any]]
    #: (category, destroy_on) of keys to move into another epoch.
    moves: list[tuple[str, date | None]]
    #: Categories under a hold.
    held: int


class Retention:
    def __init__(
        self,
        engine: AsyncEngine,
        store: BlobStore,
        keys: KeyService,
        provider: KeyProvider,
        settings: Settings,
    ) -> None:
        self.engine, self.store, self.keys, self.provider = engine, store, keys, provider
        self.settings = settings
        self.window = timedelta(weeks=settings.policy.window_weeks)
        self.grace = timedelta(days=settings.retention.grace_days)
        self.batch = max(1, settings.retention.batch_children)

    def _backup_terms(self) -> dict[str, Any]:
        return {
            "window": timedelta(days=self.settings.crypto.backup_window_days),
            "provider": self.provider.kind,
        }

    async def held(self, child_id: str) -> set[str | None]:
        async with self.engine.connect() as conn:
            return (await _holds_of(conn, [child_id])).get(child_id, set())

    async def schedule_of(self, child: Child) -> dict[str, CategorySchedule]:
        return schedule(
            child.placement_end, self.window, self.settings.retention, await self.held(child.id)
        )

    def plan(
        self,
        placement_end: date | None,
        held: set[str | None],
        live: dict[str, Row[Any]],
        now: datetime,
        *,
        destroy: bool = True,
    ) -> Plan:
        """What the schedule asks of the live keys ``live`` (by category) at
        ``now``; with ``destroy=False`` a due key is only moved (into the
        epoch that dies soonest)."""
        terms = schedule(placement_end, self.window, self.settings.retention, held)
        out = Plan(due=[], moves=[], held=0)
        for category, row in live.items():
            entry = terms.get(category)
            if entry is None:
                continue
            if entry.hold:
                out = dataclasses.replace(out, held=out.held + 1)
            if destroy and entry.due(now.date(), self.grace):
                out.due.append(row)
                continue
            destroy_on = (
                None if entry.hold or entry.destroy_at is None else entry.destroy_at + self.grace
            )
            if row.epoch != self.keys.target_epoch_name(destroy_on, now):
                out.moves.append((category, destroy_on))
        return out

    async def apply(
        self,
        child_id: str,
        placement_end: date | None,
        now: datetime,
        report: Report,
        *,
        destroy: bool = True,
    ) -> None:
        """Bring one child's keys in line with its schedule (a batch of one).

        ``destroy=False`` only moves keys between epochs (a placement or hold
        change answers at once; destruction is the job's alone).
        """
        await self._batch([(child_id, placement_end)], now, report, destroy=destroy)

    async def reschedule(self, child_id: str, placement_end: date | None, now: datetime) -> None:
        """Move the child's keys to the epochs new dates or holds call for; destroy nothing."""
        report = Report(run_id=new_id(), dry_run=False)
        await self.apply(child_id, placement_end, now, report, destroy=False)

    async def _batch(
        self,
        batch: Sequence[tuple[str, date | None]],
        now: datetime,
        report: Report,
        *,
        destroy: bool = True,
        behind: BlobsBehind | None = None,
    ) -> None:
        """One batch of children: keys moved between epochs one by one (a
        rewrap each), then every due key destroyed in one transaction; its
        blobs deleted before this returns, or ``behind`` the next batch."""
        ids = [child_id for child_id, _ in batch]
        async with self.engine.connect() as conn:
            held = await _holds_of(conn, ids)
            live = await _live_keys_of(conn, ids)
        due: list[Row[Any]] = []
        for child_id, placement_end in batch:
            plan = self.plan(
                placement_end,
                held.get(child_id, set()),
                live.get(child_id, {}),
                now,
                destroy=destroy,
            )
            report.held += plan.held
            report.rewrapped += len(plan.moves)
            if not report.dry_run:
                for category, destroy_on in plan.moves:
                    await self.keys.schedule_child_key(child_id, category, destroy_on, now)
            due += plan.due
        if not due:
            return
        if report.dry_run:
            for row in due:
                doomed = await self._doomed_items(row.child_id, row.category, row.id)
                report.destroyed[row.category] = report.destroyed.get(row.category, 0) + doomed
            return
        planned = {child_id: end for child_id, end in batch}

        async def still_due(conn: AsyncConnection) -> list[str]:
            # The facts again, inside the transaction that destroys: a hold
            # placed or an end date moved since the batch was read spares the key.
            ids = sorted({row.child_id for row in due})
            fresh_holds = await _holds_of(conn, ids)
            ends = await _placement_ends(conn, ids)
            keep = []
            for row in due:
                if row.child_id not in ends or ends[row.child_id] != planned[row.child_id]:
                    continue
                plan = self.plan(
                    ends[row.child_id],
                    fresh_holds.get(row.child_id, set()),
                    {row.category: row},
                    now,
                )
                if plan.due:
                    keep.append(row.id)
            return keep

        destroyed = await self._destroy(
            [row.id for row in due], now, report.run_id, "retention", still_due, behind
        )
        for key in destroyed:
            report.destroyed[key.category] = report.destroyed.get(key.category, 0) + len(key.items)

    async def _doomed_items(self, child_id: str, category: str, key_id: str) -> int:
        """Items that destroying ``key_id`` would leave without any key (a dry run)."""
        opened_otherwise = exists().where(
            item_keys.c.item_id == items.c.id, item_keys.c.child_key_id != key_id
        )
        async with self.engine.connect() as conn:
            rows = await conn.scalars(
                select(items.c.id)
                .join(item_children, item_children.c.item_id == items.c.id)
                .where(
                    item_children.c.child_id == child_id,
                    items.c.kind == category,
                    items.c.destroyed_at.is_(None),
                    ~opened_otherwise,
                )
            )
            return len(rows.all())

    async def destroy(
        self, child_id: str, category: str, now: datetime, run_id: str, cause: str
    ) -> Destruction:
        """Destroy the child's key for ``category`` (an erasure): as a batch of one."""
        row = (await self.keys.live_child_keys(child_id)).get(category)
        if row is None:
            return Destruction(erased=True)
        destroyed = await self._destroy([row.id], now, run_id, cause)
        return Destruction(
            erased=True,
            items=sum(len(key.items) for key in destroyed),
            bytes=sum(size for key in destroyed for _, size in key.items),
        )

    async def _destroy(
        self,
        key_ids: list[str],
        now: datetime,
        run_id: str,
        cause: str,
        still_due: Callable[[AsyncConnection], Awaitable[list[str]]] | None = None,
        behind: BlobsBehind | None = None,
    ) -> list[DestroyedChildKey]:
        """Destroy child keys, mark their items and certify it, in one
        transaction; then delete the blobs (with ``behind``: while the caller
        goes on to its next batch).

        ``still_due`` (a batch) reads the facts again inside the transaction
        and answers the key ids still to destroy.
        """
        async with self.engine.begin() as conn:
            # First the write lock (SQLite) or a lock of destroyers (PostgreSQL):
            # what is read below cannot change before the commit.
            await locks.in_transaction(conn, DESTRUCTION_LOCK)
            if still_due is not None:
                key_ids = await still_due(conn)
            destroyed = await self.keys.destroy_in(
                conn,
                key_ids,
                self.keys.clock(),
                certifier(now, run_id, cause, **self._backup_terms()),
            )
            if behind is not None:
                blobs = await behind.keys_of(conn, destroyed)
                await behind.settle(conn)  # the previous batch's, before this commits
        # Committed: the data is destroyed. A kill from here on leaves only
        # blobs no key opens, which the sweeper removes.
        if behind is None:
            await delete_destroyed_blobs(self.engine, self.store, destroyed)
        else:
            behind.start(blobs)
        return destroyed

    async def run(
        self,
        now: datetime,
        *,
        dry_run: bool = False,
        progress: Callable[[int], None] | None = None,
    ) -> Report:
        """One run at ``now``; ``Conflict`` if another run holds the lock."""
        report = Report(run_id=new_id(), dry_run=dry_run)
        if dry_run:
            await self._run(now, report, progress)
        else:
            async with locks.held(self.engine, LOCK, busy=BUSY):
                await self._run(now, report, progress)
        return report

    async def _run(
        self, now: datetime, report: Report, progress: Callable[[int], None] | None
    ) -> None:
        """The run's steps in order; each is safe to repeat after a kill."""
        await self.keys.audit.record(
            event(
                "retention.start", run_id=report.run_id, dry_run=report.dry_run, now=now.isoformat()
            )
        )
        await self._children(now, report, progress)
        await self._people(now, report)
        if not report.dry_run:
            await self._expired_epochs(now, report)
        await self._report(report)

    async def _children(
        self, now: datetime, report: Report, progress: Callable[[int], None] | None
    ) -> None:
        """Every child's keys in line with its schedule, a batch at a time."""
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(children.c.id, children.c.placement_end).order_by(children.c.id)
                )
            ).all()
        rules = Rules(window=self.window)
        async with BlobsBehind(self.engine, self.store) as behind:
            for start in range(0, len(rows), self.batch):
                batch = rows[start : start + self.batch]
                for row in batch:
                    if row.placement_end is not None:
                        facts = Child(row.id, "", "", placement_end=row.placement_end)
                        if phase(facts, now, rules) is Phase.ARCHIVED:
                            report.archived += 1
                await self._batch(
                    [(row.id, row.placement_end) for row in batch], now, report, behind=behind
                )
                if progress is not None:
                    progress(len(batch))

    async def _people(self, now: datetime, report: Report) -> None:
        """People's own data, a term after nothing links them (vault/retention/people.py)."""
        await forget_people(
            self.engine,
            self.keys,
            now,
            timedelta(days=self.settings.retention.person_term_days),
            report.run_id,
            certify=certifier(now, report.run_id, PERSON_CAUSE, **self._backup_terms()),
            dry_run=report.dry_run,
            **self._backup_terms(),
        )

    async def _expired_epochs(self, now: datetime, report: Report) -> None:
        """The master keys of expired epochs, and the child keys they wrapped."""
        backup = timedelta(days=self.settings.crypto.backup_window_days)
        epochs = await destroy_expired(
            self.keys,
            self.provider,
            now,
            backup,
            certify=certifier(now, report.run_id, "epoch", **self._backup_terms()),
        )
        report.epochs_destroyed = epochs.destroyed_epochs
        await delete_destroyed_blobs(self.engine, self.store, epochs.destroyed_keys)

    async def _report(self, report: Report) -> None:
        summary = report.as_json()
        await self.keys.audit.record(
            event(
                "retention.report",
                run_id=report.run_id,
                archived=report.archived,
                destroyed=summary["destroyed"],
                epochs_destroyed=report.epochs_destroyed,
            )
        )


async def _holds_of(conn: AsyncConnection, child_ids: Sequence[str]) -> dict[str, set[str | None]]:
    """Open holds by child: the categories held (None: every category)."""
    out: dict[str, set[str | None]] = {}
    rows = await conn.execute(
        select(holds.c.child_id, holds.c.category).where(
            among(conn, holds.c.child_id, child_ids), holds.c.lifted_at.is_(None)
        )
    )
    for child_id, category in rows.all():
        out.setdefault(child_id, set()).add(category)
    return out


async def _live_keys_of(
    conn: AsyncConnection, child_ids: Sequence[str]
) -> dict[str, dict[str, Row[Any]]]:
    """Live child key rows by child and category."""
    out: dict[str, dict[str, Row[Any]]] = {}
    rows = await conn.execute(
        select(child_keys).where(
            among(conn, child_keys.c.child_id, child_ids), child_keys.c.destroyed_at.is_(None)
        )
    )
    for row in rows.all():
        out.setdefault(row.child_id, {})[row.category] = row
    return out


async def _placement_ends(
    conn: AsyncConnection, child_ids: Sequence[str]
) -> dict[str, date | None]:
    rows = await conn.execute(
        select(children.c.id, children.c.placement_end).where(among(conn, children.c.id, child_ids))
    )
    return {child_id: end for child_id, end in rows.all()}


def certifier(
    now: datetime,
    run_id: str,
    cause: str,
    *,
    window: timedelta | None = None,
    provider: str | None = None,
) -> Certify:
    """What certifies child keys (a retention batch's, a forgotten person's,
    an epoch's, a restore's) in the transaction that destroys them
    (:meth:`~vault.keys.service.KeyService.destroy_epoch_keys` and the other
    destroyers, which all require one): :func:`certify` with these terms.
    Their blobs go after the commit (:func:`delete_destroyed_blobs`; without
    a store, or when a delete fails, the orphan sweeper removes the blobs of
    destroyed items)."""

    async def certify_in(conn: AsyncConnection, destroyed: list[DestroyedChildKey]) -> None:
        await certify(conn, destroyed, now, run_id, cause, window=window, provider=provider)

    return certify_in


async def certify(
    conn: AsyncConnection,
    destroyed: Sequence[DestroyedChildKey],
    now: datetime,
    run_id: str,
    cause: str,
    *,
    window: timedelta | None = None,
    provider: str | None = None,
) -> None:
    """A destruction certificate for each destroyed child key, in the caller's
    transaction. With the backup ``window`` and the ``provider``'s kind, each
    states when copies in backups go dark (vault/retention/certificates.py);
    else that is computed when read."""
    if not destroyed:
        return
    await conn.execute(
        insert(destruction_certificates),
        [
            {
                "id": new_id(),
                "child_id": key.child_id,
                "category": key.category,
                # The child's records: gone, or no longer its (kept for others).
                "item_count": len(key.items) + len(key.shares),
                "bytes": sum(size for _, size in key.items),
                "key_id": key.id,
                "epoch": key.epoch,
                "destroyed_at": now,
                "run_id": run_id,
                "cause": cause,
                "backups_dark_at": (
                    None
                    if window is None or provider is None
                    else backups_dark_at(key.epoch, now, window, provider)
                ),
                "key_provider": provider,
            }
            for key in destroyed
        ],
    )


#: Items whose blobs one trip deletes: their keys read in one statement, one
#: ``delete_many``, their rows removed in one statement.
_BLOB_BATCH = 1000


async def delete_destroyed_blobs(
    engine: AsyncEngine, store: BlobStore, destroyed: Sequence[DestroyedChildKey]
) -> None:
    """The blobs of the items that went with ``destroyed``."""
    doomed = sorted({item for key in destroyed for item, _ in key.items})
    for start in range(0, len(doomed), _BLOB_BATCH):
        await delete_blobs(engine, store, *doomed[start : start + _BLOB_BATCH])
