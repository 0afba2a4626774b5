"""Links (API.md "Links"): single and batch links, handovers."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from vault.api.models.common import ErrorDetail
from vault.api.models.types import (
    AccessReason,
    Answer,
    Body,
    Disposition,
    Id,
    Reason,
    TtlSeconds,
    Variant,
    one_of,
)

#: Most items one batch call links to (a timeline's screenful and more).
MAX_BATCH = 500


class LinkRequest(Body):
    """Every field optional; an empty body asks for the original, inline, 300 s."""

    variant: Variant = "original"
    ttl_seconds: TtlSeconds | None = None
    disposition: Disposition = "inline"
    #: The privacy officer's reason (required of them).
    reason: AccessReason | None = None


class BatchEntry(Body):
    item_id: Id
    variant: Variant = "original"


class BatchRequest(Body):
    items: Annotated[list[BatchEntry], msgspec.Meta(min_length=1, max_length=MAX_BATCH)]
    ttl_seconds: TtlSeconds | None = None
    #: The privacy officer's reason (required of them), for every link of the batch.
    reason: AccessReason | None = None


class IssuedLink(Answer):
    item_id: Id
    variant: Variant
    url: str
    expires_at: datetime


class RefusedLink(Answer):
    """This item only was refused; the error codes are those of its own link call."""

    item_id: str
    error: ErrorDetail


#: (Evaluated here, at import: the annotations below are evaluated lazily.)
ISSUED_OR_REFUSED = one_of(IssuedLink, RefusedLink)


class Links(Answer):
    """One entry per asked item, in the asked order."""

    links: Annotated[list[Any], msgspec.Meta(extra_json_schema=ISSUED_OR_REFUSED)]


class HandoverRequest(Body):
    recipient: Reason
    ttl_seconds: TtlSeconds | None = None
    max_downloads: Annotated[int, msgspec.Meta(ge=1, le=1_000_000)] | None = None


class PublicationRequest(Body):
    """A photo's preview published on a channel; the link lives 7 days unless
    ``ttl_seconds`` says otherwise (at most 30 days)."""

    channel: Literal["website", "social_media", "newsletter"]
    ttl_seconds: TtlSeconds | None = None
