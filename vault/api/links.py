"""Link endpoints (API.md "Links"): issue links, and answer them.

Issuing asks the policy for the caller; answering a link checks signature
and expiry, then asks the policy again with the facts as they are at that
moment (relation, consent, block, phase), then the item's state. So a link
handed out before a consent withdrawal, a block, the end of the window or a
destruction stops working at once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Row

from vault.api.access import PRINCIPAL, ask, enforce, now, rules
from vault.api.body import answer, read_body
from vault.api.models.common import ErrorDetail, Link
from vault.api.models.links import (
    BatchRequest,
    HandoverRequest,
    IssuedLink,
    LinkRequest,
    Links,
    RefusedLink,
)
from vault.api.openapi import operation
from vault.api.proxies import client_of
from vault.api.resources import DB, FACTS, KEYS, READER, SETTINGS, SIGNING, STORE
from vault.api.trail import add, attribute, caller, note, record_now
from vault.audit import event
from vault.crypto.envelope import seal_item_record
from vault.db.schema import handovers
from vault.directory.children import child_facts_of
from vault.directory.people import principal_of
from vault.errors import (
    ConsentMissing,
    Destroyed,
    Forbidden,
    InvalidInput,
    NotFound,
    OutsideWindow,
)
from vault.items import service
from vault.items.service import ChildCache, LoadedItem, read_item
from vault.keys.service import item_key_rows
from vault.policy import Action, ItemTarget, Principal, decide
from vault.share.delivery import Delivery, safe_file_name, serve
from vault.share.links import PATHS, Claims, LinkExpired, LinkInvalid, LinkSigner
from vault.tokens import new_id

#: The refusals of the calls that issue a link.
_ISSUED = {
    403: ("forbidden", "consent_missing", "outside_window"),
    404: ("not_found",),
    410: ("destroyed",),
}


async def signer(app: web.Application) -> LinkSigner:
    """The signer for the shared secrets as this process knows them (at most
    ``links.signing_refresh_seconds`` old)."""
    return _signer_for(await app[SIGNING].current())


async def verified(request: web.Request, purpose: str) -> Claims:
    """The claims of the link in the path; a link that does not verify is
    tried once more after the secrets were read again (another instance may
    have rotated them a moment ago)."""
    token, moment = request.match_info["token"], now(request)
    try:
        return (await signer(request.app)).verify(token, purpose, moment)
    except LinkInvalid:
        fresher = await request.app[SIGNING].after_miss()
        if fresher is None:
            raise
        return _signer_for(fresher).verify(token, purpose, moment)


@functools.lru_cache(maxsize=4)
def _signer_for(secrets: tuple[bytes, ...]) -> LinkSigner:
    return LinkSigner(secrets)


def link_url(request: web.Request, purpose: str, token: str) -> str:
    """``links.public_url``, else the scheme the client used (``https`` behind a
    TLS proxy that says so, vault.api.proxies) and the host it asked for."""
    base = request.app[SETTINGS].links.public_url.rstrip("/")
    if not base:
        base = f"{client_of(request).scheme}://{request.host}"
    return f"{base}{PATHS[purpose]}{token}"


def _ttl(value: int | None, default: int, cap: int) -> int:
    if value is None:
        return default
    return min(value, cap)  # over the cap is cut to the cap (API.md); at least 1 (model)


async def _target(request: web.Request, item_id: str) -> tuple[LoadedItem, ItemTarget]:
    note(request, item=item_id)
    loaded = await service.load(request.app[READER], item_id)
    if loaded is None:
        raise NotFound()
    note(request, children=loaded.record.children)
    children = await ChildCache(request.app[READER]).for_item(loaded.record)
    return loaded, ItemTarget(loaded.record.policy_item(), children)


@dataclasses.dataclass(frozen=True)
class LinkFacts:
    principal: Principal
    item: LoadedItem
    target: ItemTarget
    key_rows: Sequence[Row[Any]]


def link_facts(conn: Connection, person_id: str, item_id: str) -> LinkFacts | None:
    """Everything answering a link needs, read in one batch.

    Kept in the facts cache: every table read here must be in FACT_TABLES.
    """
    principal = principal_of(conn, person_id)
    loaded = read_item(conn, item_id)
    if principal is None or loaded is None:
        return None
    children = {}
    for child_id in loaded.record.children:
        facts = child_facts_of(conn, child_id)
        if facts is not None:
            children[child_id] = facts
    target = ItemTarget(loaded.record.policy_item(), children)
    return LinkFacts(principal, loaded, target, item_key_rows(conn, item_id))


async def _issue(
    request: web.Request,
    link_signer: LinkSigner,
    item_id: str,
    variant: str,
    ttl: int,
    disposition: str,
) -> Link:
    loaded, target = await _target(request, item_id)
    record = loaded.record
    enforce(ask(request, Action.READ_ITEM, target))
    if variant not in record.variants:
        raise NotFound(
            f"This item has no '{variant}' variant; it has: {', '.join(record.variants) or 'none'}."
        )
    moment = now(request)
    claims = Claims(
        purpose="media",
        subject=record.id,
        principal=request[PRINCIPAL].id,
        issued_at=int(moment.timestamp()),
        expires_at=int(moment.timestamp()) + ttl,
        variant=variant,
        disposition=disposition,
    )
    add(
        request,
        event("link.issue", children=record.children, item=record.id, variant=variant, ttl=ttl),
    )
    return Link(url=link_url(request, "media", link_signer.sign(claims)), expires_at=claims.expires)


@operation(
    "A short-lived link to one variant of an item.",
    tags=["links"],
    body=LinkRequest,
    answer=(201, Link),
    refusals=_ISSUED,
)
async def create_link(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].links
    body = await read_body(request, LinkRequest)
    ttl = _ttl(body.ttl_seconds, settings.media_default_ttl_seconds, settings.media_max_ttl_seconds)
    link = await _issue(
        request,
        await signer(request.app),
        request.match_info["id"],
        body.variant,
        ttl,
        body.disposition,
    )
    return answer(link, status=201)


@operation(
    "Links to many items at once (a timeline's thumbnails), up to 500; refusals per item "
    "(not_found, forbidden, consent_missing, outside_window, destroyed).",
    tags=["links"],
    body=BatchRequest,
    answer=Links,
)
async def create_links(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].links
    body = await read_body(request, BatchRequest)
    ttl = _ttl(body.ttl_seconds, settings.media_default_ttl_seconds, settings.media_max_ttl_seconds)
    link_signer = await signer(request.app)
    out: list[IssuedLink | RefusedLink] = []
    for entry in body.items:
        try:
            link = await _issue(request, link_signer, entry.item_id, entry.variant, ttl, "inline")
        except (NotFound, Forbidden, ConsentMissing, OutsideWindow, Destroyed) as refusal:
            # A refusal for this item only; the others still get their links.
            error = ErrorDetail(code=refusal.code, message=refusal.message)
            add(request, event("link.issue", outcome=refusal.code, item=entry.item_id))
            out.append(RefusedLink(item_id=entry.item_id, error=error))
            continue
        out.append(
            IssuedLink(
                item_id=entry.item_id,
                variant=entry.variant,
                url=link.url,
                expires_at=link.expires_at,
            )
        )
    return answer(Links(links=list(out)))


async def _deliver(
    request: web.Request,
    resolved: LinkFacts,
    variant: str,
    disposition: str,
    expires: datetime,
    on_complete: Callable[[], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    app = request.app
    record = resolved.item.record
    blob = resolved.item.blobs.get(variant)
    if blob is None:
        raise NotFound()
    key = await app[KEYS].unwrap_item_key(record.id, resolved.key_rows)
    meta = service.open_meta(key, record, resolved.item.sealed_meta)
    name = safe_file_name(
        meta.get("file_name"),
        f"{record.kind}-{record.created_at:%Y-%m-%d}",
        blob.content_type,
        variant,
    )
    delivery = Delivery(record.id, blob, key, disposition, name, expires)

    async def on_the_record(status: int, start: int, end: int) -> None:
        # Fail closed: no byte leaves before this is committed.
        note(request, variant=variant, status=status, offset=start, bytes=end - start)
        await record_now(request)

    return await serve(
        request, app[STORE], delivery, now(request), on_complete, before_send=on_the_record
    )


async def _answer(request: web.Request, claims: Claims, action: Action) -> LinkFacts:
    """Re-check a verified link: the person and the item as they are now, and the policy."""
    note(request, item=claims.subject, method=request.method)
    key = ("link", claims.principal, claims.subject)
    resolved: LinkFacts | None = await request.app[FACTS].get(
        key, lambda conn: link_facts(conn, claims.principal, claims.subject)
    )
    if resolved is None:
        raise NotFound()
    note(request, children=resolved.item.record.children)
    if claims.purpose == "media":
        # The link's holder acts as the person it was issued to.
        attribute(
            request,
            dataclasses.replace(
                caller(request), person=resolved.principal.id, role=resolved.principal.role
            ),
        )
    else:
        # A school, on behalf of the member of staff who handed it over.
        attribute(request, dataclasses.replace(caller(request), role="school"))
        note(request, handover=claims.reference, issued_by=resolved.principal.id)
    enforce(decide(resolved.principal, action, resolved.target, now(request), rules(request.app)))
    return resolved


@operation(
    "The bytes a link names (GET or HEAD), checked against the policy at this moment: "
    "Range, If-Range, If-None-Match and If-Match as RFC 9110 has them.",
    tags=["links"],
    auth=False,
    link=True,
)
async def open_link(request: web.Request) -> web.StreamResponse:
    claims = await verified(request, "media")
    resolved = await _answer(request, claims, Action.READ_ITEM)
    return await _deliver(request, resolved, claims.variant, claims.disposition, claims.expires)


@operation(
    "A link to an observation for a school (no account): the child's mentor or location "
    "manager, with the parents' school_handover consent; expiry and downloads counted.",
    tags=["links"],
    body=HandoverRequest,
    answer=(201, Link),
    refusals=_ISSUED,
)
async def create_handover(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].links
    body = await read_body(request, HandoverRequest)
    loaded, target = await _target(request, request.match_info["id"])
    record = loaded.record
    enforce(ask(request, Action.ISSUE_HANDOVER, target))
    ttl = _ttl(
        body.ttl_seconds,
        settings.handover_default_days * 86400,
        settings.handover_max_days * 86400,
    )
    downloads = (
        settings.handover_default_downloads if body.max_downloads is None else body.max_downloads
    )
    if not 1 <= downloads <= settings.handover_max_downloads:
        raise InvalidInput(f"'max_downloads' must be 1 to {settings.handover_max_downloads}.")
    moment = now(request)
    handover_id = new_id()
    key = await request.app[KEYS].open_item_key(record.id)
    recipient = seal_item_record(
        key, record.id, f"handover:{handover_id}", json.dumps(body.recipient).encode()
    )
    async with request.app[DB].begin() as conn:
        await conn.execute(
            insert(handovers).values(
                id=handover_id,
                item_id=record.id,
                issued_by=request[PRINCIPAL].id,
                recipient=recipient,
                created_at=moment,
                expires_at=moment + timedelta(seconds=ttl),
                max_downloads=downloads,
                downloads=0,
            )
        )
    claims = Claims(
        purpose="handover",
        subject=record.id,
        principal=request[PRINCIPAL].id,
        issued_at=int(moment.timestamp()),
        expires_at=int(moment.timestamp()) + ttl,
        disposition="attachment",
        reference=handover_id,
    )
    token = (await signer(request.app)).sign(claims)
    note(request, handover=handover_id, ttl=ttl, max_downloads=downloads)
    return answer(Link(url=link_url(request, "handover", token), expires_at=claims.expires), 201)


@operation(
    "The observation a handover names (GET or HEAD), for a school: counted downloads, "
    "school_handover consent checked at this moment.",
    tags=["links"],
    auth=False,
    link=True,
)
async def open_handover(request: web.Request) -> web.StreamResponse:
    claims = await verified(request, "handover")
    engine = request.app[DB]
    async with engine.connect() as conn:
        row = (
            await conn.execute(select(handovers).where(handovers.c.id == claims.reference))
        ).first()
    if row is None or row.item_id != claims.subject or row.issued_by != claims.principal:
        raise NotFound()
    if row.downloads >= row.max_downloads:
        raise LinkExpired(claims.expires)
    resolved = await _answer(request, claims, Action.USE_HANDOVER)

    async def counted() -> None:
        async with engine.begin() as conn:
            await conn.execute(
                update(handovers)
                .where(handovers.c.id == row.id)
                .values(downloads=handovers.c.downloads + 1)
            )

    return await _deliver(request, resolved, "original", "attachment", claims.expires, counted)


def setup(app: web.Application) -> None:
    app.router.add_post("/v1/items/{id}/links", create_link)
    app.router.add_post("/v1/links", create_links)
    app.router.add_post("/v1/items/{id}/handovers", create_handover)
    app.router.add_get("/l/{token}", open_link)
    app.router.add_get("/h/{token}", open_handover)
