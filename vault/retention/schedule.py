"""The retention schedule of a child, from its placement end and the terms.

Pure date arithmetic: ``visible_until`` is the end of the window after the
contract ends (guardians and staff still see everything), ``archived_from``
the day after, ``destroy_at`` the end date plus the category's term. While
the contract runs (no end date) every date is None.
"""

from __future__ import annotations

import calendar
import dataclasses
from datetime import date, timedelta

from vault.config import RetentionSettings
from vault.policy import FINANCIAL, KINDS

#: The child's profile (names, birth date) lives as long as the longest term.
PROFILE = "profile"
CATEGORIES = (*KINDS, PROFILE)


def add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year = day.year + month // 12
    month = month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclasses.dataclass(frozen=True)
class CategorySchedule:
    visible_until: date | None
    archived_from: date | None
    destroy_at: date | None
    statutory: bool
    hold: bool

    def due(self, today: date, grace: timedelta) -> bool:
        """Whether the keys are to be destroyed on ``today``."""
        return self.destroy_at is not None and not self.hold and today >= self.destroy_at + grace


def term_months(settings: RetentionSettings, category: str) -> int:
    if category == PROFILE:
        return max(settings.term_months(kind) for kind in KINDS)
    return settings.term_months(category)


def schedule(
    placement_end: date | None,
    window: timedelta,
    settings: RetentionSettings,
    held: set[str | None],
) -> dict[str, CategorySchedule]:
    """The schedule per category; ``held`` holds categories under a hold (None: all)."""
    out = {}
    for category in CATEGORIES:
        hold = None in held or category in held
        if placement_end is None:
            out[category] = CategorySchedule(None, None, None, category in FINANCIAL, hold)
            continue
        visible_until = placement_end + window
        out[category] = CategorySchedule(
            visible_until=visible_until,
            archived_from=visible_until + timedelta(days=1),
            destroy_at=add_months(placement_end, term_months(settings, category)),
            statutory=category in FINANCIAL,
            hold=hold,
        )
    return out
