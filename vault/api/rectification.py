"""Rectification of records (API.md 1.1 "Rectification"): ``PATCH /v1/items/{id}``
and ``PUT /v1/items/{id}/file``.

Who may correct a record is the policy's (``item.rectify``: who adds its
kind, while the child's records are visible; the privacy officer always); a
child newly tagged is a record added for that child, asked as such. The
work is :mod:`vault.items.rectify`'s; the call's audit event is appended in
the transaction of the change and names the fields changed, never a value.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import msgspec
from aiohttp import BodyPartReader, web

from vault.api.access import check, now
from vault.api.body import answer, check_file_name, read_body
from vault.api.items import (
    UPLOAD_SLOTS,
    details_of,
    item_context,
    item_for,
    next_part,
    part_chunks,
    part_file_name,
    taken_at_of,
    too_large,
)
from vault.api.jobs import wake
from vault.api.models.records import ItemChanges, ItemDetails
from vault.api.openapi import operation
from vault.api.resources import READER, SETTINGS
from vault.api.routes import route
from vault.api.trail import for_transaction, note
from vault.errors import InvalidInput, NotFound
from vault.items import rectify, service
from vault.items.ingest import size_cap_of_kind
from vault.items.service import ChildCache, LoadedItem
from vault.policy import Action, NewItemTarget

_REFUSALS = {
    403: ("forbidden", "outside_window", "consent_missing", "restricted"),
    404: ("not_found",),
    409: ("conflict",),
    410: ("destroyed",),
    503: ("storage_unavailable",),
}


def _changes(kind: str, body: ItemChanges, zone: ZoneInfo) -> rectify.Changes:
    meta: dict[str, Any] = {}
    if kind == "diary":
        if (
            body.title is not msgspec.UNSET
            or body.taken_at is not None
            or body.tagged_children is not None
        ):
            raise InvalidInput("A diary entry is corrected by its 'text' only.")
        if body.text is None:
            raise InvalidInput("Send the diary entry's corrected 'text'.")
        return rectify.Changes(text=body.text)
    if body.text is not None:
        raise InvalidInput("'text' is a diary entry's; correct a file's 'title' or 'taken_at'.")
    if body.title is not msgspec.UNSET:
        meta["title"] = body.title or None  # an empty title removes it
    if body.taken_at is not None:
        meta["taken_at"] = taken_at_of(body.taken_at, zone)
    if not meta and body.tagged_children is None:
        raise InvalidInput("Send at least one of 'title', 'taken_at' or 'tagged_children'.")
    return rectify.Changes(meta=meta, tagged=body.tagged_children)


async def _check_added(request: web.Request, loaded: LoadedItem, tagged: list[str]) -> None:
    """A child newly tagged: the policy is asked as for a record added for it."""
    record = loaded.record
    primary, was_tagged = await rectify.tagged_of(item_context(request), record.id)
    added = [c for c in dict.fromkeys(tagged) if c not in primary and c not in was_tagged]
    if not added:
        return
    cache = ChildCache(request.app[READER])
    facts = []
    for child_id in added:
        child = await cache.get(child_id)
        if child is None:
            raise NotFound("A tagged child does not exist, or is not related to you.")
        facts.append(child)
    check(request, Action.CREATE_ITEM, NewItemTarget(record.kind, tuple(facts)))


async def _answer(request: web.Request, item_id: str) -> web.Response:
    loaded = await service.load(request.app[READER], item_id)
    assert loaded is not None  # just written
    return answer(await details_of(request, loaded))


@operation(
    "Correct a record: a file's title, taken_at or tagged children, or a diary entry's text "
    "(a new version; the old text is not kept readable).",
    tags=["records"],
    body=ItemChanges,
    answer=(200, ItemDetails),
    refusals=_REFUSALS,
)
async def correct(request: web.Request) -> web.Response:
    body = await read_body(request, ItemChanges)
    loaded = await item_for(request, Action.RECTIFY_ITEM)
    changes = _changes(loaded.record.kind, body, request.app[SETTINGS].uploads.camera_zone)
    if changes.tagged is not None:
        await _check_added(request, loaded, list(changes.tagged))
    fields = sorted(
        name
        for name in ("title", "taken_at", "text", "tagged_children")
        if getattr(body, name) not in (None, msgspec.UNSET)
    )
    if body.title is None:
        fields = sorted({*fields, "title"})
    note(request, fields=fields)
    await rectify.rectify(
        item_context(request), loaded, changes, for_transaction(request), now(request)
    )
    return await _answer(request, loaded.record.id)


@operation(
    "Replace a record's file (multipart: one 'file' part): a new version with new variants; "
    "the old version's key is destroyed and its blobs removed.",
    tags=["records"],
    answer=(200, ItemDetails),
    file_only=True,
    refusals={**_REFUSALS, 413: ("too_large",), 415: ("unsupported_type",)},
)
async def replace(request: web.Request) -> web.Response:
    loaded = await item_for(request, Action.RECTIFY_ITEM)
    record = loaded.record
    if record.kind == "diary":
        raise InvalidInput("A diary entry has no file; correct its 'text' with PATCH.")
    settings = request.app[SETTINGS]
    too_large(request, size_cap_of_kind(settings, record.kind))
    if request.content_type != "multipart/form-data":
        raise InvalidInput("Send multipart/form-data with one part 'file'.")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError):
        raise InvalidInput(
            "The multipart body has no usable boundary; send multipart/form-data with a "
            "'file' part."
        ) from None
    timeout = settings.server.body_timeout_seconds
    # As for uploads (vault/api/items.py): a few files at a time, taken
    # before the first byte of the file is read.
    async with request.app[UPLOAD_SLOTS]:
        part = await next_part(reader, timeout)
        if not isinstance(part, BodyPartReader) or part.name != "file":
            raise InvalidInput("Send one part named 'file'.")
        file_name = check_file_name(part_file_name(part))
        note(request, fields=["file"])
        events = for_transaction(request)

        async def nothing_after() -> None:
            if await next_part(reader, timeout) is not None:
                raise InvalidInput("Send exactly one part, 'file'; nothing was changed.")

        replaced = await rectify.replace_file(
            item_context(request),
            loaded,
            part_chunks(part, timeout),
            file_name,
            events,
            now(request),
            before_commit=nothing_after,
        )
    if replaced.processing:
        wake(request.app)
    return await _answer(request, record.id)


def setup(app: web.Application) -> None:
    route(app, "PATCH", "/v1/items/{id}", correct, audit="items.rectify")
    route(app, "PUT", "/v1/items/{id}/file", replace, audit="items.replace_file")
