"""Record endpoints (API.md "Records"): upload, list, read metadata, delete.

``POST /v1/children/{id}/items`` takes either ``multipart/form-data`` (a
``meta`` part with JSON, then a ``file`` part, streamed) or a JSON diary
entry. The policy is asked before a byte of the file is read.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from aiohttp import BodyPartReader, web

from vault.api.access import PRINCIPAL, ask, check, child_for, load_child, now
from vault.api.body import Field, iso_utc, parse_date, read_json
from vault.api.openapi import operation
from vault.api.resources import DB, KEYS, READER, SETTINGS, STORE
from vault.api.trail import note, record_now
from vault.directory.bsn import BsnNotStored, contains_bsn, refuse_bsn
from vault.errors import InvalidInput, NotFound
from vault.items import service
from vault.items.ingest import Context, ingest_file, ingest_text
from vault.items.service import ChildCache, ItemRecord
from vault.policy import KINDS, Action, Child, ItemTarget, NewItemTarget

MAX_META = 64 * 1024
MAX_DIARY_TEXT = 20_000
DEFAULT_LIMIT, MAX_LIMIT = 50, 200
_ERRORS = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden, consent_missing, outside_window or blocked",
    404: "not_found",
}


def item_json(record: ItemRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "kind": record.kind,
        "children": list(record.children),
        "variants": list(record.variants),
        "size": record.size,
        "content_type": record.content_type,
        "created_at": iso_utc(record.created_at),
    }


#: Sealed metadata the vault keeps for itself (an export's CRC-32s).
INTERNAL_META = frozenset({"crc32"})


def _context(request: web.Request) -> Context:
    app = request.app
    return Context(app[DB], app[STORE], app[KEYS], app[SETTINGS])


async def _owners(request: web.Request, posted: Child, tagged: list[Any]) -> tuple[Child, ...]:
    """The posted child and every tagged child, as policy facts."""
    if not all(isinstance(t, str) for t in tagged):
        raise InvalidInput("The field 'tagged_children' must be a list of child ids.")
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
    "Add a record: a file (multipart: a 'meta' JSON part, then a 'file' part) or a diary "
    "entry (JSON). The type is read from the file's bytes.",
    tags=["records"],
    responses={
        201: "The new item.",
        413: "too_large",
        415: "unsupported_type",
        422: "bsn_not_stored",
        503: "storage_unavailable",
        **_ERRORS,
    },
)
async def create(request: web.Request) -> web.Response:
    posted = await load_child(request)  # the policy is asked below, per record
    if request.content_type == "multipart/form-data":
        record = await _upload(request, posted)
    elif request.content_type == "application/json":
        record = await _diary(request, posted)
    else:
        raise InvalidInput(
            "Send multipart/form-data (a 'meta' part, then a 'file' part) or a JSON diary entry."
        )
    note(request, children=record.children, item=record.id, kind=record.kind, size=record.size)
    return web.json_response(item_json(record), status=201)


async def _upload(request: web.Request, posted: Child) -> ItemRecord:
    reader = await request.multipart()
    meta_part = await reader.next()
    if not isinstance(meta_part, BodyPartReader) or meta_part.name != "meta":
        raise InvalidInput("The first part must be 'meta' (JSON); the 'file' part follows it.")
    raw = bytearray()
    async for chunk in _chunks(meta_part):
        raw += chunk
        if len(raw) > MAX_META:
            raise InvalidInput("The 'meta' part is longer than 64 KiB.")
    meta = _parse_meta(bytes(raw))
    kind = meta["kind"]
    if kind == "diary":
        raise InvalidInput("Diary entries are sent as JSON, not as a file.")
    owners = await _owners(request, posted, meta.get("tagged_children", []))
    check(request, Action.CREATE_ITEM, NewItemTarget(kind, owners))
    file_part = await reader.next()
    if not isinstance(file_part, BodyPartReader) or file_part.name != "file":
        raise InvalidInput("The 'file' part is missing; send it after 'meta'.")
    record_meta = {
        "title": meta.get("title"),
        "taken_at": meta.get("taken_at"),
        "file_name": file_part.filename,
    }
    record = await ingest_file(
        _context(request),
        kind=kind,
        owners=[child.id for child in owners],
        uploader=request[PRINCIPAL].id,
        source=_chunks(file_part),
        meta=record_meta,
        now=now(request),
    )
    # Parts after 'file' are read and dropped: nothing of them is kept.
    while await reader.next() is not None:
        pass
    return record


async def _chunks(part: BodyPartReader) -> Any:
    while chunk := await part.read_chunk(256 * 1024):
        yield chunk


def _parse_meta(raw: bytes) -> dict[str, Any]:
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("The 'meta' part is not valid JSON.") from None
    if not isinstance(meta, dict):
        raise InvalidInput("The 'meta' part must be a JSON object.")
    refuse_bsn(meta, scan_values=False)
    unknown = sorted(set(meta) - {"kind", "title", "taken_at", "tagged_children"})
    if unknown:
        raise InvalidInput(f"Unknown field(s) in 'meta': {', '.join(unknown)}.")
    if meta.get("kind") not in KINDS:
        raise InvalidInput(f"The field 'kind' must be one of: {', '.join(KINDS)}.")
    title = meta.get("title")
    if title is not None:
        if not isinstance(title, str) or len(title) > 500:
            raise InvalidInput("The field 'title' must be a string of at most 500 characters.")
        if contains_bsn(title):
            raise BsnNotStored()
    taken_at = meta.get("taken_at")
    if taken_at is not None:
        meta["taken_at"] = _timestamp("taken_at", taken_at)
    tagged = meta.get("tagged_children", [])
    if not isinstance(tagged, list) or len(tagged) > 100:
        raise InvalidInput("The field 'tagged_children' must be a list of child ids.")
    return meta


def _timestamp(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"The field '{name}' must be an ISO 8601 date or timestamp.")
    try:
        if len(value) == 10:
            return parse_date(name, value).isoformat()
        return datetime.fromisoformat(value.replace("Z", "+00:00")).isoformat()
    except ValueError:
        raise InvalidInput(f"The field '{name}' must be an ISO 8601 date or timestamp.") from None


async def _diary(request: web.Request, posted: Child) -> ItemRecord:
    body = await read_json(
        request,
        {
            "kind": Field(choices=("diary",)),
            "date": Field(type="date"),
            "text": Field(max_length=MAX_DIARY_TEXT),
            "photo_ids": Field(type="list", required=False),
        },
        directory=True,
    )
    check(request, Action.CREATE_ITEM, NewItemTarget("diary", (posted,)))
    photo_ids = body.get("photo_ids", [])
    await _check_diary_photos(request, posted, body["date"], photo_ids)
    return await ingest_text(
        _context(request),
        kind="diary",
        owners=[posted.id],
        uploader=request[PRINCIPAL].id,
        meta={"date": body["date"].isoformat(), "text": body["text"], "photo_ids": photo_ids},
        now=now(request),
    )


async def _check_diary_photos(
    request: web.Request, child: Child, day: Any, photo_ids: list[Any]
) -> None:
    """A diary entry may point at photos of the same child taken or added that day."""
    for photo_id in photo_ids:
        loaded = (
            await service.load(request.app[READER], photo_id) if isinstance(photo_id, str) else None
        )
        if (
            loaded is None
            or loaded.record.kind != "photo"
            or child.id not in loaded.record.children
        ):
            raise InvalidInput("Every entry of 'photo_ids' must be a photo of this child.")
        record = loaded.record
        meta = await service.read_meta(request.app[KEYS], record, loaded.sealed_meta)
        when = (meta.get("taken_at") or record.created_at.isoformat())[:10]
        if when != day.isoformat():
            raise InvalidInput("The photos of a diary entry must be of the entry's day.")


async def _item_for(request: web.Request, action: Action) -> service.LoadedItem:
    note(request, item=request.match_info["id"])
    loaded = await service.load(request.app[READER], request.match_info["id"])
    if loaded is None:
        raise NotFound()
    note(request, children=loaded.record.children)
    children = await ChildCache(request.app[READER]).for_item(loaded.record)
    check(request, action, ItemTarget(loaded.record.policy_item(), children))
    return loaded


@operation(
    "An item's metadata, its title and other content decrypted.",
    tags=["records"],
    responses={200: "The item.", 410: "destroyed", **_ERRORS},
)
async def read(request: web.Request) -> web.Response:
    loaded = await _item_for(request, Action.READ_ITEM)
    record = loaded.record
    meta = await service.read_meta(request.app[KEYS], record, loaded.sealed_meta)
    return web.json_response(
        {
            **item_json(record),
            **{k: v for k, v in meta.items() if v is not None and k not in INTERNAL_META},
        }
    )


@operation(
    "Delete a record: its key is destroyed (privacy officer, or the uploader within 24 hours).",
    tags=["records"],
    responses={204: "Destroyed.", 410: "destroyed", **_ERRORS},
)
async def remove(request: web.Request) -> web.Response:
    record = (await _item_for(request, Action.DELETE_ITEM)).record
    await record_now(request)
    app = request.app
    await service.destroy(app[DB], app[STORE], app[KEYS], record.id, now(request))
    return web.Response(status=204)


@operation(
    "The records of a child the caller may see, newest first; destroyed ones as tombstones.",
    tags=["records"],
    responses={200: "{items, next_cursor}", **_ERRORS},
)
async def listing(request: web.Request) -> web.Response:
    child = await child_for(request, Action.LIST_ITEMS)
    kind = request.query.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"'kind' must be one of: {', '.join(KINDS)}.")
    limit = _limit(request.query.get("limit"))
    cursor = _decode_cursor(request.query.get("cursor"))
    cache = ChildCache(request.app[READER])
    shown: list[dict[str, Any]] = []
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
                    {
                        "id": record.id,
                        "kind": record.kind,
                        "destroyed": True,
                        "created_at": iso_utc(record.created_at),
                    }
                )
            if len(shown) == limit:
                break
    next_cursor = None if exhausted and len(shown) < limit else _encode_cursor(last)
    return web.json_response({"items": shown, "next_cursor": next_cursor})


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidInput(f"'limit' must be a number from 1 to {MAX_LIMIT}.")
    return int(text)


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
        return datetime.fromisoformat(at), str(item_id)
    except (ValueError, TypeError, binascii.Error):
        raise InvalidInput("'cursor' is not one this API gave out.") from None


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/children/{id}/items", create)
    app.router.add_get("/v1/children/{id}/items", listing)
    app.router.add_get("/v1/items/{id}", read)
    app.router.add_delete("/v1/items/{id}", remove)
