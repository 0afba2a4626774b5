"""What a destruction certificate promises about backups, in one place.

Destroying a child key makes the live database unable to open its records at
once. Copies in backups taken *before* the destruction still hold the child
key, wrapped under the master key of its epoch; they stop being readable when
no copy of that master key is left:

* the epoch's master key dies at its term (:func:`epoch_dies`): a
  ``shred-YYYY-MM`` epoch at the end of its month, an old ``live-YYYY-MM``
  epoch once unused and ``crypto.backup_window_days`` after its month (so a
  backup taken during that month can still be restored);
* with the **local keyring**, a backup of the keyring file taken before then
  may hold it for as long as such backups are kept: no longer than the
  backup window (``kluis keys backup`` says so). So the copies go dark at
  ``max(destruction, epoch's death) + backup window``;
* on a **PKCS#11 token** (an HSM), the vault's own copy dies with the token's
  object at the epoch's death; copies in the HSM's own backups (a cloned
  token, a backup blob) follow the HSM's backup policy, which the vault
  cannot see or shorten.

:func:`backups_dark_at` computes the date, stored on each certificate when it
is written (``backups_dark_at``, ``key_provider``); :func:`backup_words` gives
a certificate's answer fields, also for certificates written before those
columns existed (computed from their epoch and time).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta
from typing import Any

from vault.keys import epochs

HSM_POLICY = (
    "The master key was on a PKCS#11 token (an HSM): copies in the HSM's own backups "
    "(a cloned token, an HSM backup) stay readable as long as the HSM's backup policy "
    "keeps them."
)
LOCAL_KEYRING = (
    "Copies in backups taken before the destruction can no longer be read from this date, "
    "provided backups of the keyring file ('kluis keys backup') are kept no longer than "
    "crypto.backup_window_days."
)


def epoch_dies(name: str, window: timedelta) -> datetime | None:
    """When the master key of epoch ``name`` is destroyed at the latest
    (a retention run at that time); None for a name that is not an epoch."""
    try:
        epoch = epochs.parse(name)
    except ValueError:
        return None
    return epoch.month_end if epoch.kind == "shred" else epoch.month_end + window


def backups_dark_at(
    epoch: str, destroyed_at: datetime, window: timedelta, provider: str
) -> datetime | None:
    """When no copy of a child key destroyed at ``destroyed_at`` in ``epoch``
    can be opened any more (for ``pkcs11``: apart from the HSM's own backups)."""
    dies = epoch_dies(epoch, window)
    if dies is None:
        return None
    last = max(destroyed_at, dies)
    return last + window if provider == "local" else last


@dataclasses.dataclass(frozen=True)
class BackupWords:
    """What a certificate states about copies in backups."""

    #: From when copies in backups taken before the destruction are unreadable.
    backups_dark_at: datetime | None
    #: The condition that date rests on (the keyring's backups, or the HSM's).
    backups_note: str

    def as_json(self) -> dict[str, Any]:
        return {
            "backups_dark_at": (
                None if self.backups_dark_at is None else self.backups_dark_at.isoformat()
            ),
            "backups_note": self.backups_note,
        }


def backup_words(row: Any, window: timedelta, provider: str) -> BackupWords:
    """A ``destruction_certificates`` row's promise about backups.

    ``window`` and ``provider`` (``settings.crypto.backup_window_days``, the
    provider's ``kind``) are used only for rows written before migration 0015,
    which stored neither.
    """
    kind = row.key_provider or provider
    dark = row.backups_dark_at
    if dark is None:
        dark = backups_dark_at(row.epoch, row.destroyed_at, window, kind)
    return BackupWords(dark, HSM_POLICY if kind == "pkcs11" else LOCAL_KEYRING)
