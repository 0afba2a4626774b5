"""The retention job, holds, and destruction by category.

``Retention.run`` is safe to run often and to interrupt: every step looks at
the current state. For each child it puts each live child key in the epoch
its schedule calls for (the shred epoch of the month it is due, after the
grace period; the live epoch while the contract runs or a hold is open),
destroys the keys that are due, then marks the items that no live key opens
any more as destroyed and deletes their blobs (a blob that cannot be deleted
now is left to the orphan sweeper, which removes the blobs of destroyed
items), and writes a destruction certificate. Last, it destroys the master
keys of expired epochs.

One run at a time, across every process on the database: the run holds a
lock its process's death releases at once (:func:`vault.db.locks.held`), so a
killed run never wedges the next, whatever ``now`` either was given. A run
told another ``now`` than the clock's (``--now``, to catch up or to test)
moves the schedule, never the live epoch running servers write into.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import exists, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from vault.audit import event
from vault.config import Settings
from vault.db import locks
from vault.db.schema import (
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
from vault.keys.service import DestroyedChildKey, KeyService
from vault.policy import KINDS, Child, Phase, Rules, phase
from vault.retention.certificates import backups_dark_at
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

    def _backup_terms(self) -> dict[str, Any]:
        return {
            "window": timedelta(days=self.settings.crypto.backup_window_days),
            "provider": self.provider.kind,
        }

    async def held(self, child_id: str) -> set[str | None]:
        async with self.engine.connect() as conn:
            rows = await conn.scalars(
                select(holds.c.category).where(
                    holds.c.child_id == child_id, holds.c.lifted_at.is_(None)
                )
            )
            return set(rows.all())

    async def schedule_of(self, child: Child) -> dict[str, CategorySchedule]:
        return schedule(
            child.placement_end, self.window, self.settings.retention, await self.held(child.id)
        )

    async def apply(
        self,
        child_id: str,
        placement_end: date | None,
        now: datetime,
        report: Report,
        *,
        destroy: bool = True,
    ) -> None:
        """Bring one child's keys in line with its schedule.

        ``destroy=False`` only moves keys between epochs (a placement or hold
        change answers at once; destruction is the job's alone).
        """
        held = await self.held(child_id)
        plan = schedule(placement_end, self.window, self.settings.retention, held)
        for category, row in (await self.keys.live_child_keys(child_id)).items():
            entry = plan.get(category)
            if entry is None:
                continue
            if entry.hold:
                report.held += 1
            if entry.due(now.date(), self.grace) and destroy:
                if report.dry_run:
                    report.destroyed[category] = report.destroyed.get(category, 0) + (
                        await self._doomed_items(child_id, category, row.id)
                    )
                    continue
                done = await self.destroy(child_id, category, now, report.run_id, "retention")
                report.destroyed[category] = report.destroyed.get(category, 0) + done.items
                continue
            destroy_on = (
                None if entry.hold or entry.destroy_at is None else entry.destroy_at + self.grace
            )
            target = self.keys.target_epoch_name(destroy_on, now)
            if row.epoch != target:
                report.rewrapped += 1
                if not report.dry_run:
                    await self.keys.schedule_child_key(child_id, category, destroy_on, now)

    async def reschedule(self, child_id: str, placement_end: date | None, now: datetime) -> None:
        """Move the child's keys to the epochs new dates or holds call for; destroy nothing."""
        report = Report(run_id=new_id(), dry_run=False)
        await self.apply(child_id, placement_end, now, report, destroy=False)

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
        """Destroy the child's key for ``category``: keys and item marks first
        (one transaction), then the certificate, then the blobs."""
        destroyed = await self.keys.destroy_child_key(child_id, category)
        if destroyed is None:
            return Destruction(erased=True)
        await record_destructions(
            self.engine, self.store, [destroyed], now, run_id, cause, **self._backup_terms()
        )
        return Destruction(
            erased=True, items=len(destroyed.items), bytes=sum(size for _, size in destroyed.items)
        )

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
        await self.keys.audit.record(
            event(
                "retention.start", run_id=report.run_id, dry_run=report.dry_run, now=now.isoformat()
            )
        )
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(children.c.id, children.c.placement_end).order_by(children.c.id)
                )
            ).all()
        rules = Rules(window=self.window)
        for row in rows:
            if row.placement_end is not None:
                facts = Child(row.id, "", "", placement_end=row.placement_end)
                if phase(facts, now, rules) is Phase.ARCHIVED:
                    report.archived += 1
            await self.apply(row.id, row.placement_end, now, report)
            if progress is not None:
                progress(1)
        # People's own data, a term after nothing links them (vault/retention/people.py).
        await forget_people(
            self.engine,
            self.keys,
            now,
            timedelta(days=self.settings.retention.person_term_days),
            report.run_id,
            dry_run=report.dry_run,
            **self._backup_terms(),
        )
        if not report.dry_run:
            backup = timedelta(days=self.settings.crypto.backup_window_days)
            epochs = await destroy_expired(self.keys, self.provider, now, backup)
            report.epochs_destroyed = epochs.destroyed_epochs
            await record_destructions(
                self.engine,
                self.store,
                epochs.destroyed_keys,
                now,
                report.run_id,
                "epoch",
                **self._backup_terms(),
            )
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


async def record_destructions(
    engine: AsyncEngine,
    store: BlobStore | None,
    destroyed: Sequence[DestroyedChildKey],
    now: datetime,
    run_id: str,
    cause: str,
    *,
    window: timedelta | None = None,
    provider: str | None = None,
) -> None:
    """A certificate for each destroyed child key, then its items' blobs deleted
    (without a store, or when a delete fails, the orphan sweeper removes the
    blobs of destroyed items). With the backup ``window`` and the ``provider``'s
    kind, each certificate states when copies in backups go dark
    (vault/retention/certificates.py); else that is computed when read."""
    if not destroyed:
        return
    async with engine.begin() as conn:
        await conn.execute(
            insert(destruction_certificates),
            [
                {
                    "id": new_id(),
                    "child_id": key.child_id,
                    "category": key.category,
                    "item_count": len(key.items),
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
    if store is None:
        return
    doomed = sorted({item for key in destroyed for item, _ in key.items})
    for start in range(0, len(doomed), 500):
        await delete_blobs(engine, store, *doomed[start : start + 500])
