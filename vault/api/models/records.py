"""Records (API.md "Records"): uploads, diary entries, listings, metadata."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

import msgspec

from vault.api.models.types import (
    Answer,
    Body,
    DateOrTimestamp,
    DiaryText,
    Id,
    Kind,
    Query,
    Timestamp,
    Title,
    Variant,
    one_of,
)

Ids = Annotated[list[Id], msgspec.Meta(max_length=100)]


class UploadMeta(Body):
    """The ``meta`` part of an upload (JSON); the ``file`` part follows it."""

    kind: Kind
    title: Title | None = None
    #: When absent, a photo's EXIF DateTimeOriginal (docs/media.md). A
    #: timestamp without a zone is read in ``uploads.camera_time_zone``;
    #: stored and answered in UTC (``…Z``), a day alone as a day.
    taken_at: DateOrTimestamp | None = None
    tagged_children: Ids = msgspec.field(default_factory=list)


class DiaryEntry(Body):
    kind: Literal["diary"]
    date: date
    text: DiaryText
    photo_ids: Ids = msgspec.field(default_factory=list)


class Item(Answer):
    id: Id
    kind: Kind
    children: list[Id]
    variants: list[Variant]
    size: int
    content_type: str
    created_at: Timestamp
    #: 1 at upload; each replaced content (a new file, a diary entry's new text) is the next.
    version: int
    updated_at: Timestamp | None

    #: Variants a job is still making (a video's posters, its ``web`` rendition);
    #: left out when there are none. A link to one answers 409 until it is ready.
    processing: list[Variant] = msgspec.field(default_factory=list)


class ItemChanges(Body):
    """A record's corrections: any of the fields; an absent one stays as it is.

    ``title`` and ``taken_at`` and ``tagged_children`` (the new set) are a
    file's; ``text`` is a diary entry's. An empty (or null) ``title`` removes it.
    """

    title: Title | msgspec.UnsetType | None = msgspec.UNSET
    taken_at: DateOrTimestamp | None = None
    text: DiaryText | None = None
    tagged_children: Ids | None = None


class ItemDetails(Item):
    """An item with its decrypted metadata (only what the item has)."""

    title: str | None = None
    file_name: str | None = None
    #: A day (``2026-11-20``) or a moment in UTC (``2026-11-20T13:03:00Z``).
    taken_at: str | None = None
    width: int | None = None
    height: int | None = None
    date: str | None = None
    text: str | None = None
    photo_ids: list[Id] | None = None


class Tombstone(Answer):
    """A destroyed item, as listings show it."""

    id: Id
    kind: Kind
    #: Always true (a boolean const: generators read it; not all read an enum of true).
    destroyed: Annotated[bool, msgspec.Meta(extra_json_schema={"const": True})]
    created_at: Timestamp


#: (Evaluated here, at import: the annotations below are evaluated lazily.)
ITEM_OR_TOMBSTONE = one_of(Item, Tombstone)


class ItemPage(Answer):
    items: Annotated[list[Any], msgspec.Meta(extra_json_schema=ITEM_OR_TOMBSTONE)]
    next_cursor: str | None


class ItemQuery(Query):
    kind: Kind | None = None
    limit: Annotated[int, msgspec.Meta(ge=1, le=200)] = 50
    cursor: (
        Annotated[str, msgspec.Meta(max_length=200, description="next_cursor of the page before")]
        | None
    ) = None
    before: (
        Annotated[Timestamp, msgspec.Meta(description="only items created before this moment")]
        | None
    ) = None
