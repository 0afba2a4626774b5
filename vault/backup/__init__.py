"""``kluis backup DEST`` and ``kluis restore SRC``: the data, never the keys.

A backup is a directory: ``manifest.json`` (when, which database and schema,
how many objects), the database copy (:mod:`vault.backup.database`), and
the blob store's objects with their listing (:mod:`vault.backup.blobs`). It
holds ciphertext and the clear metadata the database keeps, never the
keyring: a master key destroyed after the backup was taken must leave the
backup's copies of what it wrapped unreadable (docs/crypto.md, "What must
not be backed up with the data"). The key store has its own backup,
``kluis keys backup``, sealed with a passphrase and kept apart.

The database is copied first, then the objects it names: blobs are written
before their rows, so every object the copy names existed when it was
taken; one deleted before it was copied belonged to a record destroyed
meanwhile, and the manifest lists it. The backup is written under a
temporary name and renamed when complete, so a failed one leaves nothing
that looks like a backup.

A restore refuses a backup older than ``crypto.backup_window_days`` unless
forced: by then the live master keys it relies on may be gone, so it would
bring back records whose keys are destroyed (which it could not open). It
replaces the database's contents, applies newer migrations, puts every
listed object back (checking each against its digest), then finds the
records the key store can no longer open, because their epoch's master key
was destroyed after the backup was taken, and marks and reports them
destroyed again, with their certificates. Erasure on request destroys a
child key or an item key without an epoch, so a backup from before it
still opens those records while their live epoch lives: when the database
being replaced can still be read, the child keys and items it had destroyed
are destroyed again in the restored one (a disaster that took the database
with it leaves that to the operator, and the report says so). Stop every
``kluis serve`` first.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from vault import __version__
from vault.audit import event
from vault.backup import blobs, database
from vault.config import Settings
from vault.db import create_engine, is_current, upgrade
from vault.db.migrate import known_revisions
from vault.db.schema import child_keys, item_blobs, items
from vault.errors import KluisError
from vault.items import service as items_service
from vault.keys.service import DestroyedChildKey
from vault.retention.job import certifier, delete_destroyed_blobs
from vault.tokens import new_id
from vault.wiring import Vault, open_vault

MANIFEST = "manifest.json"
FORMAT, VERSION = "kluis-backup", 1

Progress = Callable[[str, int], Callable[[int], None]]


class BackupRefused(KluisError):
    default_message = "The backup cannot be used."


@dataclasses.dataclass
class BackupReport:
    path: Path
    taken_at: datetime
    database: str
    objects: int
    bytes: int
    missing: list[str]


def _live_blobs(conn: Connection) -> list[str]:
    rows = conn.execute(
        select(item_blobs.c.blob_key)
        .join(items, items.c.id == item_blobs.c.item_id)
        .where(items.c.destroyed_at.is_(None))
    )
    return [str(key) for key in rows.scalars()]


def _revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


async def take(vault: Vault, dest: Path, now: datetime, progress: Progress) -> BackupReport:
    """Write a backup of ``vault``'s data into the new directory ``dest``."""
    _check_new(dest)
    await vault.audit.record(event("backup.take"))
    partial = dest.with_name(f".{dest.name}.partial-{secrets.token_hex(4)}")
    partial.mkdir(parents=True, mode=0o700)
    try:
        async with database.snapshot(vault.engine, partial) as read:
            keys = await read(_live_blobs)
            revision = await read(_revision)
        bar = progress("objects", len(set(keys)))
        entries, missing = await blobs.copy_out(vault.blobs, keys, partial, bar)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "taken_at": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "kluis": __version__,
            "database": database.kind(vault.engine),
            "schema": revision,
            "objects": len(entries),
            "bytes": sum(e.size for e in entries),
            "missing": missing,
        }
        _write_json(partial / MANIFEST, manifest)
        _finish(partial, dest)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return BackupReport(
        dest, now, str(manifest["database"]), len(entries), int(manifest["bytes"]), missing
    )


def _check_new(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise BackupRefused(f"{dest} exists and is not empty; name a new directory.")


def _finish(partial: Path, dest: Path) -> None:
    if dest.exists():
        dest.rmdir()  # empty, as checked
    partial.rename(dest)


def _write_json(path: Path, value: Any) -> None:
    with path.open("w", encoding="utf-8") as out:
        json.dump(value, out, indent=1, sort_keys=True)
        out.flush()
        os.fsync(out.fileno())


def read_manifest(source: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((source / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BackupRefused(f"{source} is not a Kluis backup (no {MANIFEST}).") from None
    except ValueError:
        raise BackupRefused(f"{source}/{MANIFEST} is damaged (not JSON).") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupRefused(f"{source} is not a Kluis backup.")
    if manifest.get("version") != VERSION:
        raise BackupRefused(
            f"{source} is a backup of format {manifest.get('version')}; "
            f"this Kluis reads format {VERSION}."
        )
    return manifest


@dataclasses.dataclass
class RestoreReport:
    taken_at: datetime
    database: str
    objects_restored: int = 0
    objects_present: int = 0
    damaged: list[str] = dataclasses.field(default_factory=list)
    #: Child keys destroyed (with their records) since the backup was taken.
    destroyed: list[DestroyedChildKey] = dataclasses.field(default_factory=list)
    #: Records the database names whose stored objects the backup lacks.
    incomplete: list[str] = dataclasses.field(default_factory=list)
    #: Epochs the database's child keys name that the key store does not hold.
    unknown_epochs: list[str] = dataclasses.field(default_factory=list)
    #: Child keys and items the replaced database had destroyed (erasure on
    #: request after the backup was taken), destroyed again.
    erased: list[DestroyedChildKey] = dataclasses.field(default_factory=list)
    erased_items: list[str] = dataclasses.field(default_factory=list)
    #: Whether the database being replaced could be read for those.
    replaced_read: bool = True

    @property
    def unreadable(self) -> int:
        return sum(len(key.items) for key in self.destroyed)


async def restore(
    settings: Settings, source: Path, now: datetime, progress: Progress, *, force: bool = False
) -> RestoreReport:
    """Put the backup in ``source`` back (see the module's docstring)."""
    manifest = read_manifest(source)
    taken_at = datetime.fromisoformat(str(manifest["taken_at"]).replace("Z", "+00:00"))
    window = timedelta(days=settings.crypto.backup_window_days)
    if now - taken_at > window and not force:
        raise BackupRefused(
            f"The backup was taken {(now - taken_at).days} days ago, more than "
            f"crypto.backup_window_days ({settings.crypto.backup_window_days}): the master keys "
            "it needs may be destroyed, so records whose keys are gone would come back "
            "unreadable. Use --force to restore it all the same."
        )
    if manifest.get("schema") not in known_revisions():
        raise BackupRefused(
            f"The backup's schema ({manifest.get('schema')}) is not one this Kluis knows; "
            "restore it with the Kluis version that took it, or a newer one."
        )
    entries = blobs.read_listing(source)
    engine = create_engine(settings.database_url)
    try:
        if database.kind(engine) != manifest["database"]:
            raise BackupRefused(
                f"The backup is of a {manifest['database']} database; this vault is configured "
                f"for {database.kind(engine)} (database.url)."
            )
        replaced = await _destroyed_in(engine)
        await database.restore(engine, source)
        if not await is_current(engine):
            await upgrade(engine)
    finally:
        await engine.dispose()
    report = RestoreReport(taken_at, str(manifest["database"]), replaced_read=replaced is not None)
    async with open_vault(settings) as vault:
        put = await blobs.copy_in(vault.blobs, entries, source, progress("objects", len(entries)))
        report.objects_restored, report.objects_present = put.restored, put.present
        report.damaged = put.damaged
        await _destroyed_since(vault, report, now)
        if replaced is not None:
            await _erase_again(vault, report, replaced, now)
        lacking = set(manifest.get("missing", [])) | set(put.damaged)
        report.incomplete = await _items_naming(vault, lacking)
        await vault.audit.record(
            event(
                "backup.restore",
                taken_at=manifest["taken_at"],
                objects=len(entries),
                unreadable=report.unreadable,
                incomplete=len(report.incomplete),
            )
        )
    return report


async def _destroyed_since(vault: Vault, report: RestoreReport, now: datetime) -> None:
    """Mark what the key store can no longer open; note epochs it never held."""
    infos = {info.name: info for info in await vault.provider.list_keys()}
    certify = certifier(now, new_id(), "restore")
    for name, info in sorted(infos.items()):
        if info.destroyed:
            # Certified as they are marked: a restore stopped here leaves no
            # key destroyed without its certificate.
            report.destroyed += await vault.keys.destroy_epoch_keys(name, certify)
    await delete_destroyed_blobs(vault.engine, vault.blobs, report.destroyed)
    async with vault.engine.connect() as conn:
        named = set(
            (
                await conn.scalars(
                    select(child_keys.c.epoch).where(child_keys.c.destroyed_at.is_(None))
                )
            ).all()
        )
    report.unknown_epochs = sorted(named - set(infos))


@dataclasses.dataclass(frozen=True)
class _Destroyed:
    """What a database had destroyed: child keys (id, child, category) and items."""

    child_keys: list[tuple[str, str, str]]
    items: list[str]


async def _destroyed_in(engine: AsyncEngine) -> _Destroyed | None:
    """What the database about to be replaced had destroyed; None if unreadable
    (gone, damaged, never made)."""
    try:
        async with engine.connect() as conn:
            keys = await conn.execute(
                select(child_keys.c.id, child_keys.c.child_id, child_keys.c.category).where(
                    child_keys.c.destroyed_at.is_not(None)
                )
            )
            gone = await conn.scalars(select(items.c.id).where(items.c.destroyed_at.is_not(None)))
            return _Destroyed([(r.id, r.child_id, r.category) for r in keys], list(gone))
    except (SQLAlchemyError, OSError):
        return None
    finally:
        await engine.dispose()


async def _erase_again(
    vault: Vault, report: RestoreReport, replaced: _Destroyed, now: datetime
) -> None:
    certify = certifier(now, new_id(), "restore")
    for key_id, child_id, category in replaced.child_keys:
        live = (await vault.keys.live_child_keys(child_id)).get(category)
        if live is not None and live.id == key_id:
            destroyed = await vault.keys.destroy_child_key(child_id, category, certify)
            if destroyed is not None:
                report.erased.append(destroyed)
    await delete_destroyed_blobs(vault.engine, vault.blobs, report.erased)
    if not replaced.items:
        return
    async with vault.engine.connect() as conn:
        alive = (
            await conn.scalars(
                select(items.c.id).where(
                    items.c.id.in_(replaced.items), items.c.destroyed_at.is_(None)
                )
            )
        ).all()
    for item_id in alive:
        await items_service.destroy(vault.engine, vault.blobs, vault.keys, item_id, now)
        report.erased_items.append(item_id)


async def _items_naming(vault: Vault, keys: set[str]) -> list[str]:
    if not keys:
        return []
    async with vault.engine.connect() as conn:
        rows = await conn.scalars(
            select(item_blobs.c.item_id)
            .join(items, items.c.id == item_blobs.c.item_id)
            .where(item_blobs.c.blob_key.in_(sorted(keys)), items.c.destroyed_at.is_(None))
        )
        return sorted(set(rows.all()))
