"""Monthly rotation and the destruction of expired master keys.

``rotate`` makes the current month's live epoch, rewraps every child key of
an older live epoch into it (child keys only, never the blobs: a few
microseconds each), then destroys what has expired:

* an old live epoch, once no child key uses it and its month ended more than
  the backup window ago (a backup from that month can be restored until then);
* a shred epoch, once its month is over. Its child keys are marked destroyed
  after the master key is gone (keys first, then the row marks), so a crash
  in between leaves rows that can no longer open: still destroyed. Each
  batch of rows is marked in one transaction with the keys' destruction
  certificates (``certify``), so no child key is ever marked destroyed
  without its certificate.

Safe to interrupt and to run again: every step looks at the current state
(an expired epoch whose master key is gone but whose child keys' rows are
not, a run having stopped in between, has its rows marked and certified by
the next, which reports the epoch as ``finished_epochs``).
Whatever ``now`` a run is given (``--now``, to catch up or to test), it never
destroys the live epoch of the service's own clock: running servers write
new child keys into it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import datetime, timedelta

from vault.audit import event
from vault.keys import epochs
from vault.keys.provider import KeyProvider
from vault.keys.service import Certify, DestroyedChildKey, KeyService


@dataclasses.dataclass
class RotationReport:
    live_epoch: str
    rewrapped: int = 0
    #: Epochs whose master key this run destroyed.
    destroyed_epochs: list[str] = dataclasses.field(default_factory=list)
    #: Epochs whose master key was gone already (a run stopped before their
    #: child keys, or another process's at the same time) and whose child
    #: keys this run destroyed.
    finished_epochs: list[str] = dataclasses.field(default_factory=list)
    #: The child keys this run destroyed, of both, and the items with them.
    destroyed_keys: list[DestroyedChildKey] = dataclasses.field(default_factory=list)

    @property
    def destroyed_child_keys(self) -> int:
        """Child keys that went with the epochs this run destroyed."""
        return sum(1 for key in self.destroyed_keys if key.epoch in self.destroyed_epochs)

    @property
    def finished_child_keys(self) -> int:
        """Child keys of epochs destroyed before, destroyed by this run."""
        return sum(1 for key in self.destroyed_keys if key.epoch in self.finished_epochs)


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
    *,
    certify: Certify,
) -> RotationReport:
    """``certify``: as in :func:`destroy_expired`."""
    current = epochs.live(now)
    await keys.ensure_master(current.name, now)
    report = RotationReport(live_epoch=current.name)
    for name in sorted(await keys.epoch_usage()):
        if name.startswith("live-") and name != current.name:
            report.rewrapped += await keys.rewrap_epoch(name, current.name, progress=progress)
    await destroy_expired(keys, provider, now, backup_window, report, certify=certify)
    return report


async def destroy_expired(
    keys: KeyService,
    provider: KeyProvider,
    now: datetime,
    backup_window: timedelta,
    report: RotationReport | None = None,
    *,
    certify: Certify,
) -> RotationReport:
    """Destroy expired epochs and their child keys; ``certify`` writes the
    keys' certificates in the transactions that mark them
    (:meth:`KeyService.destroy_epoch_keys`)."""
    current = epochs.live(now)
    in_use = epochs.live(keys.clock())  # what running servers write into, whatever ``now`` says
    report = report or RotationReport(live_epoch=current.name)
    usage = await keys.epoch_usage()
    for info in await provider.list_keys():
        try:
            epoch = epochs.parse(info.name)
        except ValueError:
            continue  # not an epoch (the signing key): never destroyed here
        if epoch in (current, in_use) or not epoch.expired(now, backup_window):
            continue
        if info.destroyed:
            # Another process destroyed the master key (its epoch.destroy is
            # on the record) and stopped before the rows: they follow the key.
            if usage.get(info.name):
                finished = await keys.destroy_epoch_keys(info.name, certify)
                if finished:
                    report.finished_epochs.append(info.name)
                    report.destroyed_keys += finished
            continue
        if epoch.kind == "live" and usage.get(info.name):
            continue  # rotation has not moved everything out yet
        # On the record before the master key goes (fail closed).
        await keys.audit.record(event("epoch.destroy", epoch=info.name))
        mine = await provider.destroy_key(info.name, now)
        if mine:
            report.destroyed_epochs.append(info.name)
        # Also when another process destroyed it since list_keys: the rows
        # follow the key.
        finished = await keys.destroy_epoch_keys(info.name, certify)
        if finished and not mine:
            report.finished_epochs.append(info.name)
        report.destroyed_keys += finished
    return report
