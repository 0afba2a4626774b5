"""Epochs: which master key wraps a child key, and when each master key dies.

Two kinds of epoch, named by month:

* ``live-YYYY-MM`` wraps the child keys whose destruction date is not known
  yet (the contract runs). The live epoch is the one of the current month;
  monthly rotation rewraps every child key of an older live epoch into it.
  An old live epoch is destroyed once no child key uses it and its month
  ended more than the backup window ago: until then, a database backup taken
  during its month can still be restored.
* ``shred-YYYY-MM`` wraps the child keys due for destruction in that month.
  Once the month is over its master key is destroyed, and with it every copy
  of those child keys in every backup.

All the dates come from the names, so the schedule survives any restore.
"""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, date, datetime, timedelta

_NAME = re.compile(r"^(live|shred)-(\d{4})-(0[1-9]|1[0-2])$")


@dataclasses.dataclass(frozen=True, order=True)
class Epoch:
    kind: str  # "live" or "shred"
    year: int
    month: int

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.year:04d}-{self.month:02d}"

    @property
    def month_end(self) -> datetime:
        """The first instant after the epoch's month (UTC)."""
        if self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=UTC)
        return datetime(self.year, self.month + 1, 1, tzinfo=UTC)

    def expired(self, now: datetime, backup_window: timedelta) -> bool:
        """Whether the epoch's master key is due for destruction at ``now``.

        A live epoch additionally requires that no child key uses it; the
        caller checks that.
        """
        if self.kind == "shred":
            return now >= self.month_end
        return now >= self.month_end + backup_window


def parse(name: str) -> Epoch:
    match = _NAME.fullmatch(name)
    if match is None:
        raise ValueError(f"not an epoch name: {name!r}")
    return Epoch(match[1], int(match[2]), int(match[3]))


def live(now: datetime) -> Epoch:
    moment = now.astimezone(UTC)
    return Epoch("live", moment.year, moment.month)


def shred(destroy_on: date) -> Epoch:
    return Epoch("shred", destroy_on.year, destroy_on.month)


def for_schedule(destroy_on: date | None, now: datetime) -> Epoch:
    """The epoch a child key belongs in: its shred month, or the live epoch."""
    return live(now) if destroy_on is None else shred(destroy_on)
