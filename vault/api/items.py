"""Record endpoints (API.md "Records"): upload, list, read metadata, delete.

``POST /v1/children/{id}/items`` takes either ``multipart/form-data`` (a
``meta`` part with JSON, then a ``file`` part, streamed) or a JSON diary
entry. The policy is asked before a byte of the file is read.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import json
from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.multipart import BadContentDispositionParam

from vault.api.access import PRINCIPAL, ask, check, child_for, load_child, now
from vault.api.body import (
    answer,
    check_file_name,
    decode,
    idle_limited,
    is_json,
    read_body,
    read_query,
)
from vault.api.jobs import wake
from vault.api.models.records import (
    DiaryEntry,
    Item,
    ItemDetails,
    ItemPage,
    ItemQuery,
    Tombstone,
    UploadMeta,
)
from vault.api.openapi import operation
from vault.api.resources import DB, KEYS, READER, SETTINGS, STORE
from vault.api.routes import route
from vault.api.trail import note, record_now
from vault.errors import InvalidInput, NotFound, TooLarge
from vault.items import service
from vault.items.ingest import Context, ingest_file, ingest_text, largest_cap, size_cap_of_kind
from vault.items.service import ChildCache, ItemRecord
from vault.items.when import answered_taken_at, day_of, normal_taken_at
from vault.policy import Action, Child, ItemTarget, NewItemTarget
from vault.sizes import size_text

MAX_META = 64 * 1024
#: Room in a Content-Length for the meta part, boundaries and part headers.
MULTIPART_ROOM = MAX_META + 16 * 1024
#: Refusals of a call about one item.
_ON_ITEM = {
    403: ("forbidden", "outside_window", "restricted"),
    404: ("not_found",),
    410: ("destroyed",),
}


def item_json(record: ItemRecord) -> Item:
    return Item(
        id=record.id,
        kind=record.kind,  # type: ignore[arg-type]  # stored kinds are KINDS
        children=list(record.shown_for),
        variants=list(record.variants),  # type: ignore[arg-type]
        processing=list(record.processing),  # type: ignore[arg-type]
        size=record.size,
        content_type=record.content_type,
        created_at=record.created_at,
        version=record.version,
        updated_at=record.updated_at,
    )


#: Sealed metadata the vault keeps for itself (an export's CRC-32s).
INTERNAL_META = frozenset({"crc32"})


def item_context(request: web.Request) -> Context:
    app = request.app
    return Context(app[DB], app[STORE], app[KEYS], app[SETTINGS])


async def owners_of(request: web.Request, posted: Child, tagged: list[str]) -> tuple[Child, ...]:
    """The posted child and every tagged child, as policy facts."""
    cache = ChildCache(request.app[READER])
    children = [posted]
    for child_id in dict.fromkeys(tagged):
        if child_id == posted.id:
            continue
        facts = await cache.get(child_id)
        if facts is None:
            raise NotFound("A tagged child does not exist, or is not related to you.")
        children.append(facts)
    return tuple(children)


@operation(
    "Add a record: a file (multipart: a 'meta' JSON part, then one 'file' part) or a diary "
    "entry (JSON). The type is read from the file's bytes.",
    tags=["records"],
    body=DiaryEntry,
    upload=UploadMeta,
    answer=(201, Item),
    refusals={
        403: ("forbidden", "consent_missing", "outside_window", "restricted"),
        404: ("not_found",),
        503: ("storage_unavailable",),
    },
)
async def create(request: web.Request) -> web.Response:
    posted = await load_child(request)  # the policy is asked below, per record
    if request.content_type == "multipart/form-data":
        record = await _upload(request, posted)
    elif is_json(request.content_type):
        record = await _diary(request, posted)
    else:
        raise InvalidInput(
            "Send multipart/form-data (a 'meta' part, then a 'file' part) or a JSON diary entry."
        )
    note(request, children=record.children, item=record.id, kind=record.kind, size=record.size)
    if record.processing:
        wake(request.app)
    return answer(item_json(record), status=201)


def too_large(request: web.Request, cap: int) -> None:
    """Refuse at once a body that cannot fit: before a byte of it is read."""
    length = request.content_length
    if length is not None and length > cap + MULTIPART_ROOM:
        raise TooLarge(
            f"The request is {size_text(length)}; a file of this kind may be at most "
            f"{size_text(cap)}. Nothing was stored."
        )


async def _upload(request: web.Request, posted: Child) -> ItemRecord:
    settings = request.app[SETTINGS]
    too_large(request, largest_cap(settings))
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError):
        raise InvalidInput(
            "The multipart body has no usable boundary; send multipart/form-data with a "
            "'meta' part and a 'file' part."
        ) from None
    timeout = settings.server.body_timeout_seconds
    meta_part = await next_part(reader, timeout)
    if not isinstance(meta_part, BodyPartReader) or meta_part.name != "meta":
        raise InvalidInput("The first part must be 'meta' (JSON); the 'file' part follows it.")
    raw = bytearray()
    async for chunk in part_chunks(meta_part, timeout):
        raw += chunk
        if len(raw) > MAX_META:
            raise InvalidInput("The 'meta' part is longer than 64 KiB.")
    meta = decode(bytes(raw), UploadMeta, "The 'meta' part")
    if meta.kind == "diary":
        raise InvalidInput("Diary entries are sent as JSON, not as a file.")
    too_large(request, size_cap_of_kind(settings, meta.kind))
    owners = await owners_of(request, posted, meta.tagged_children)
    check(request, Action.CREATE_ITEM, NewItemTarget(meta.kind, owners))
    async with request.app[UPLOAD_SLOTS]:
        return await _ingest(request, reader, meta, owners, idle=timeout)


async def _ingest(
    request: web.Request,
    reader: MultipartReader,
    meta: UploadMeta,
    owners: tuple[Child, ...],
    *,
    idle: float,
) -> ItemRecord:
    timeout = idle
    file_part = await next_part(reader, timeout)
    if not isinstance(file_part, BodyPartReader) or file_part.name != "file":
        raise InvalidInput("The 'file' part is missing; send it after 'meta'.")
    record_meta = {
        "title": meta.title,
        "taken_at": taken_at_of(meta.taken_at, request.app[SETTINGS].uploads.camera_zone),
        "file_name": check_file_name(part_file_name(file_part)),
    }

    async def nothing_after() -> None:
        # One file per upload: anything after it refuses the whole upload,
        # before the item is committed.
        if await next_part(reader, timeout) is not None:
            raise InvalidInput(
                "Send exactly two parts, 'meta' then one 'file'; nothing was stored."
            )

    return await ingest_file(
        item_context(request),
        kind=meta.kind,
        owners=[child.id for child in owners],
        uploader=request[PRINCIPAL].id,
        source=part_chunks(file_part, timeout),
        meta=record_meta,
        now=now(request),
        before_commit=nothing_after,
    )


async def next_part(reader: MultipartReader, idle: float) -> Any:
    try:
        return await idle_limited(reader.next(), idle)
    except (ValueError, HttpProcessingError, BadContentDispositionParam):
        # (aiohttp warns of a parameter it cannot decode and drops it; where
        # warnings are errors, as in the tests, the warning arrives here.)
        raise InvalidInput(
            "The multipart body is malformed; send a 'meta' part and then a 'file' part."
        ) from None


def part_file_name(part: BodyPartReader) -> str | None:
    name = part.filename
    if name is None and "filename" in part.headers.get(hdrs.CONTENT_DISPOSITION, "").lower():
        # A name aiohttp could not decode (not UTF-8) and dropped.
        raise InvalidInput("The file part's name cannot be read as UTF-8; rename the file.")
    return name


async def part_chunks(part: BodyPartReader, idle: float) -> AsyncIterator[bytes]:
    while True:
        try:
            chunk = await idle_limited(part.read_chunk(256 * 1024), idle)
        except (ValueError, HttpProcessingError):
            raise InvalidInput(
                "The multipart body is malformed; send a 'meta' part and then a 'file' part."
            ) from None
        if not chunk:
            return
        yield chunk


def taken_at_of(value: str | None, zone: ZoneInfo) -> str | None:
    """A client's ``taken_at`` as it is stored: a day, or UTC with ``Z``
    (a time without a zone read in the camera zone: vault/items/when.py)."""
    if value is None:
        return None
    try:
        return normal_taken_at(value, zone)
    except ValueError:
        raise InvalidInput(
            "The field 'taken_at' must be an ISO 8601 date or timestamp "
            "(2026-11-21 or 2026-11-21T10:00:00Z) of the years 1 to 9999, "
            "both in UTC and on the organisation's clocks."
        ) from None


async def _diary(request: web.Request, posted: Child) -> ItemRecord:
    body = await read_body(request, DiaryEntry)
    check(request, Action.CREATE_ITEM, NewItemTarget("diary", (posted,)))
    await _check_diary_photos(request, posted, body.date, body.photo_ids)
    return await ingest_text(
        item_context(request),
        kind="diary",
        owners=[posted.id],
        uploader=request[PRINCIPAL].id,
        meta={"date": body.date.isoformat(), "text": body.text, "photo_ids": body.photo_ids},
        now=now(request),
    )


async def _check_diary_photos(
    request: web.Request, child: Child, day: date, photo_ids: list[str]
) -> None:
    """A diary entry may point at photos of the same child taken or added that
    day: the day on the organisation's clocks (the camera zone), not UTC's."""
    zone = request.app[SETTINGS].uploads.camera_zone
    for photo_id in photo_ids:
        loaded = await service.load(request.app[READER], photo_id)
        if (
            loaded is None
            or loaded.record.kind != "photo"
            or child.id not in loaded.record.shown_for
        ):
            raise InvalidInput("Every entry of 'photo_ids' must be a photo of this child.")
        record = loaded.record
        meta = await service.read_meta(request.app[KEYS], record, loaded.sealed_meta)
        if day_of(meta.get("taken_at"), record.created_at, zone) != day:
            raise InvalidInput("The photos of a diary entry must be of the entry's day.")


async def item_for(request: web.Request, action: Action) -> service.LoadedItem:
    note(request, item=request.match_info["id"])
    loaded = await service.load(request.app[READER], request.match_info["id"])
    if loaded is None:
        raise NotFound()
    note(request, children=loaded.record.shown_for)
    children = await ChildCache(request.app[READER]).for_item(loaded.record)
    check(request, action, ItemTarget(loaded.record.policy_item(), children))
    return loaded


@operation(
    "An item's metadata, its title and other content decrypted.",
    tags=["records"],
    answer=ItemDetails,
    refusals=_ON_ITEM,
)
async def read(request: web.Request) -> web.Response:
    loaded = await item_for(request, Action.READ_ITEM)
    return answer(await details_of(request, loaded))


async def details_of(request: web.Request, loaded: service.LoadedItem) -> ItemDetails:
    """The item's metadata with its sealed part opened (what the caller may read),
    and the variants a job is still making."""
    pending = await service.processing(request.app[READER], loaded.record.id)
    record = dataclasses.replace(loaded.record, processing=pending)
    meta = await service.read_meta(request.app[KEYS], record, loaded.sealed_meta)
    details = {
        **msgspec.to_builtins(item_json(record)),
        **{k: v for k, v in meta.items() if v is not None and k not in INTERNAL_META},
    }
    if isinstance(details.get("taken_at"), str):
        # Stored before taken_at was UTC (an EXIF offset, or no zone): answered as UTC too.
        details["taken_at"] = answered_taken_at(
            details["taken_at"], request.app[SETTINGS].uploads.camera_zone
        )
    return msgspec.convert(details, ItemDetails)


@operation(
    "Delete a record: its key is destroyed (privacy officer, or the uploader within 24 hours).",
    tags=["records"],
    answer=(204, None),
    refusals=_ON_ITEM,
)
async def remove(request: web.Request) -> web.Response:
    record = (await item_for(request, Action.DELETE_ITEM)).record
    await record_now(request)
    app = request.app
    await service.destroy(app[DB], app[STORE], app[KEYS], record.id, now(request))
    return web.Response(status=204)


@operation(
    "The records of a child the caller may see, newest first; destroyed ones as tombstones. "
    "'cursor' (the last page's next_cursor) or 'before' (a moment) pages back.",
    tags=["records"],
    answer=ItemPage,
    query=ItemQuery,
    refusals={403: ("forbidden", "outside_window", "restricted"), 404: ("not_found",)},
)
async def listing(request: web.Request) -> web.Response:
    child = await child_for(request, Action.LIST_ITEMS)
    query = read_query(request, ItemQuery)
    kind, limit = query.kind, query.limit
    if query.cursor is not None and query.before is not None:
        raise InvalidInput("Send 'cursor' or 'before', not both.")
    cursor = _decode_cursor(query.cursor)
    if query.before is not None:
        cursor = (query.before, "")  # everything created strictly before that moment
    cache = ChildCache(request.app[READER])
    shown: list[Item | Tombstone] = []
    last: tuple[datetime, str] | None = cursor
    exhausted = False
    while len(shown) < limit and not exhausted:
        batch = [
            r async for r in service.page_for_child(request.app[DB], child.id, kind, last, limit)
        ]
        exhausted = len(batch) < limit
        for record in batch:
            last = (record.created_at, record.id)
            target = ItemTarget(record.policy_item(), await cache.for_item(record))
            decision = ask(request, Action.READ_ITEM, target)
            if decision.allowed:
                shown.append(item_json(record))
            elif decision.code == "destroyed":
                shown.append(
                    Tombstone(
                        id=record.id,
                        kind=record.kind,  # type: ignore[arg-type]
                        destroyed=True,
                        created_at=record.created_at,
                    )
                )
            if len(shown) == limit:
                break
    next_cursor = None if exhausted and len(shown) < limit else _encode_cursor(last)
    return answer(ItemPage(items=list(shown), next_cursor=next_cursor))


def _encode_cursor(position: tuple[datetime, str] | None) -> str | None:
    if position is None:
        return None
    raw = json.dumps([position[0].isoformat(), position[1]]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str | None) -> tuple[datetime, str] | None:
    if not text:
        return None
    try:
        at, item_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError
        return moment, str(item_id)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise InvalidInput("'cursor' is not one this API gave out.") from None


#: Uploads whose file is read and stored at once; the others wait before a
#: byte of their file is read (TCP holds their senders back), so uploads
#: cannot crowd out link fetches on the loop and the store.
UPLOAD_SLOTS = web.AppKey("upload_slots", asyncio.Semaphore)


def setup(app: web.Application) -> None:
    app[UPLOAD_SLOTS] = asyncio.Semaphore(app[SETTINGS].uploads.parallel)
    route(app, "POST", "/v1/children/{id}/items", create, audit="items.create")
    route(app, "GET", "/v1/children/{id}/items", listing, audit="items.listing")
    route(app, "GET", "/v1/items/{id}", read, audit="items.read")
    route(app, "DELETE", "/v1/items/{id}", remove, audit="items.remove")
