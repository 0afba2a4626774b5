"""Monthly rotation and the destruction of expired master keys.

``rotate`` makes the current month's live epoch, rewraps every child key of
an older live epoch into it (child keys only, never the blobs: a few
microseconds each), then destroys what has expired:

* an old live epoch, once no child key uses it and its month ended more than
  the backup window ago (a backup from that month can be restored until then);
* a shred epoch, once its month is over. Its child keys are marked destroyed
  after the master key is gone (keys first, then the row marks), so a crash
  in between leaves rows that can no longer open: still destroyed.

Safe to interrupt and to run again: every step looks at the current state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from vault.audit import event
from vault.crypto import epochs
from vault.crypto.keyring import KeyProvider
from vault.crypto.keys import KeyService


@dataclasses.dataclass
class RotationReport:
    live_epoch: str
    rewrapped: int = 0
    destroyed_epochs: list[str] = dataclasses.field(default_factory=list)
    destroyed_child_keys: int = 0


async def keys_to_rewrap(keys: KeyService, now: datetime) -> int:
    current = epochs.live(now).name
    usage = await keys.epoch_usage()
    return sum(n for name, n in usage.items() if name.startswith("live-") and name != current)


async def rotate(
    keys: KeyService,
    provider: KeyProvider,
    now: datetime,
    backup_window: timedelta,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    current = epochs.live(now)
    await provider.create_epoch(current.name, now)
    report = RotationReport(live_epoch=current.name)
    for name in sorted(await keys.epoch_usage()):
        if name.startswith("live-") and name != current.name:
            report.rewrapped += await keys.rewrap_epoch(name, current.name, progress=progress)
    await destroy_expired(keys, provider, now, backup_window, report)
    return report


async def destroy_expired(
    keys: KeyService,
    provider: KeyProvider,
    now: datetime,
    backup_window: timedelta,
    report: RotationReport | None = None,
) -> RotationReport:
    current = epochs.live(now)
    report = report or RotationReport(live_epoch=current.name)
    usage = await keys.epoch_usage()
    for info in await provider.epochs():
        if info.destroyed:
            continue
        try:
            epoch = epochs.parse(info.name)
        except ValueError:
            continue  # not an epoch of this scheme; leave it alone
        if epoch == current or not epoch.expired(now, backup_window):
            continue
        if epoch.kind == "live" and usage.get(info.name):
            continue  # rotation has not moved everything out yet
        # On the record before the master key goes (fail closed).
        await keys.audit.record(event("epoch.destroy", epoch=info.name))
        await provider.destroy_epoch(info.name, now)
        report.destroyed_child_keys += await keys.destroy_epoch_keys(info.name)
        report.destroyed_epochs.append(info.name)
    return report
