"""Export (API.md "Export")."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec

from vault.api.models.types import AccessReason, Answer, Body, Kind


class ExportRequest(Body):
    """Every field optional; an empty body exports everything the caller may see."""

    kinds: Annotated[list[Kind], msgspec.Meta(min_length=1)] | None = None
    #: The privacy officer's reason (required of them).
    reason: AccessReason | None = None


class ExportLink(Answer):
    url: str
    expires_at: datetime
    size: int
