"""Retention and rights (API.md "Retention and rights")."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

import msgspec

from vault.api.models.types import Answer, Body, Id, Kind, Reason, Timestamp

Kinds = Annotated[list[Kind], msgspec.Meta(min_length=1)]


class CategorySchedule(Answer):
    """Dates are null while the contract runs."""

    visible_until: date | None
    archived_from: date | None
    destroy_at: date | None
    statutory: bool
    hold: bool


class Schedule(Answer):
    placement_end: date | None
    categories: dict[Kind, CategorySchedule]


class HoldRequest(Body):
    """Without ``category`` the hold covers every category."""

    reason: Reason
    category: Kind | None = None


class ErasureRequest(Body):
    """Without ``categories``: every category."""

    categories: Kinds | None = None


class Erasure(Answer):
    erased: bool
    reason: Literal["statutory_retention", "legal_hold"] | None = None
    destroy_at: date | msgspec.UnsetType | None = msgspec.UNSET


class ErasureResults(Answer):
    results: dict[Kind, Erasure]


class RunRequest(Body):
    """Every field optional; an empty body runs the job for real, now."""

    now: Timestamp | None = None
    dry_run: bool = False


class RunReport(Answer):
    run_id: Id
    dry_run: bool
    archived: int
    rewrapped: int
    held: int
    destroyed: dict[Kind, int]
    epochs_destroyed: list[str]
