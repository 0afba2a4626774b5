"""When copies in backups taken before a destruction stop being readable."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from vault.retention.certificates import (
    HSM_POLICY,
    LOCAL_KEYRING,
    backup_words,
    backups_dark_at,
    epoch_dies,
)

WINDOW = timedelta(days=35)


def test_an_epoch_dies_at_its_term() -> None:
    assert epoch_dies("shred-2027-12", WINDOW) == datetime(2028, 1, 1, tzinfo=UTC)
    # A live epoch outlives its month by the window: backups of that month restore.
    assert epoch_dies("live-2027-12", WINDOW) == datetime(2028, 2, 5, tzinfo=UTC)
    assert epoch_dies("profile", WINDOW) is None


@pytest.mark.parametrize(
    ("epoch", "destroyed", "provider", "dark"),
    [
        # Destroyed in its shred month: December's key dies on 1 January,
        # keyring backups holding it are gone 35 days later.
        ("shred-2027-12", datetime(2027, 12, 7, tzinfo=UTC), "local", datetime(2028, 2, 5)),
        ("shred-2027-12", datetime(2027, 12, 7, tzinfo=UTC), "pkcs11", datetime(2028, 1, 1)),
        # Destroyed after its epoch already died (a late run): from the destruction.
        ("shred-2027-12", datetime(2028, 3, 1, tzinfo=UTC), "local", datetime(2028, 4, 5)),
        # Erased while the contract runs: the live epoch is needed for the window.
        ("live-2026-11", datetime(2026, 11, 21, tzinfo=UTC), "local", datetime(2027, 2, 9)),
    ],
)
def test_backups_go_dark_after_the_epoch_and_the_keyrings_backups(
    epoch: str, destroyed: datetime, provider: str, dark: datetime
) -> None:
    assert backups_dark_at(epoch, destroyed, WINDOW, provider) == dark.replace(tzinfo=UTC)
    found = backups_dark_at(epoch, destroyed, WINDOW, provider)
    assert found is not None
    assert found >= destroyed + (WINDOW if provider == "local" else timedelta(0))


@dataclasses.dataclass
class Row:
    epoch: str
    destroyed_at: datetime
    backups_dark_at: datetime | None
    key_provider: str | None


def test_a_certificate_states_its_date_and_what_it_rests_on() -> None:
    stored = Row("shred-2027-12", datetime(2027, 12, 7, tzinfo=UTC), None, "pkcs11")
    words = backup_words(stored, WINDOW, "local")
    assert words.backups_dark_at == datetime(2028, 1, 1, tzinfo=UTC)
    assert words.backups_note == HSM_POLICY
    # Written before the columns existed: computed from epoch and time.
    old = Row("shred-2027-12", datetime(2027, 12, 7, tzinfo=UTC), None, None)
    assert backup_words(old, WINDOW, "local").as_json() == {
        "backups_dark_at": "2028-02-05T00:00:00+00:00",
        "backups_note": LOCAL_KEYRING,
    }
    # A stored date is the promise made then, whatever the window is now.
    kept = Row("shred-2027-12", datetime(2027, 12, 7, tzinfo=UTC), datetime(2028, 2, 5), "local")
    assert backup_words(kept, timedelta(days=90), "local").backups_dark_at == datetime(2028, 2, 5)
