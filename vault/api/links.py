"""Link endpoints (API.md "Links"): issue links, and answer them.

Handlers parse, ask and answer; what a link gives is decided again at use
by :mod:`vault.share.at_use` (the facts as they are now, the policy asked
again), links are made and checked by :mod:`vault.share.issuing`, and a
handover's downloads are counted by :mod:`vault.share.handovers`. So a link
handed out before a consent withdrawal, a block, the end of the window or a
destruction stops working at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from vault.api.access import PRINCIPAL, ask, now, rules, stated_reason
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
from vault.api.proxies import public_origin
from vault.api.resources import DB, FACTS, KEYS, LINKS, READER, SETTINGS, STORE
from vault.api.routes import route
from vault.api.trail import add, attribute, caller, note, record_now
from vault.audit import event
from vault.errors import (
    Conflict,
    ConsentMissing,
    Destroyed,
    Forbidden,
    InvalidInput,
    NotFound,
    OutsideWindow,
    Restricted,
)
from vault.items import service
from vault.items.service import ChildCache, LoadedItem
from vault.policy import Action, ItemTarget, enforce
from vault.rights.reasons import Reasons
from vault.share import at_use, handovers
from vault.share.at_use import LinkFacts
from vault.share.delivery import Delivery, headers_for, safe_file_name, serve
from vault.share.issuing import path_of
from vault.share.links import Claims
from vault.share.opened import OPENED, OpenedKeys

#: What refuses one link of a batch, not the batch.
_PER_ITEM = (NotFound, Conflict, Forbidden, ConsentMissing, OutsideWindow, Destroyed, Restricted)
#: The refusals of the calls that issue a link.
_ISSUED = {
    403: ("forbidden", "consent_missing", "outside_window", "restricted"),
    404: ("not_found",),
    410: ("destroyed",),
}
#: A media link also waits for a variant a job is still making.
_MEDIA_ISSUED = {**_ISSUED, 409: ("conflict",)}


async def verified(request: web.Request, purpose: str) -> Claims:
    """The claims of the link in the path (signature, form, expiry)."""
    return await request.app[LINKS].verify(request.match_info["token"], purpose, now(request))


def link_url(request: web.Request, purpose: str, token: str) -> str:
    """The link's URL on :func:`vault.api.proxies.public_origin`."""
    return f"{public_origin(request)}{path_of(purpose, token)}"


def _ttl(value: int | None, default: int, cap: int) -> int:
    if value is None:
        return default
    return min(value, cap)  # over the cap is cut to the cap (API.md); at least 1 (model)


async def _target(request: web.Request, item_id: str) -> tuple[LoadedItem, ItemTarget]:
    note(request, item=item_id)
    loaded = await service.load(request.app[READER], item_id)
    if loaded is None:
        raise NotFound()
    note(request, children=loaded.record.shown_for)
    children = await ChildCache(request.app[READER]).for_item(loaded.record)
    return loaded, ItemTarget(loaded.record.policy_item(), children)


async def _issue(
    request: web.Request,
    item_id: str,
    variant: str,
    ttl: int,
    disposition: str,
    reason: Reasons | None,
) -> Link:
    loaded, target = await _target(request, item_id)
    record = loaded.record
    decision = enforce(ask(request, Action.ISSUE_LINK, target, reason=reason is not None))
    if variant not in record.variants:
        if variant in await service.processing(request.app[READER], record.id):
            raise Conflict(
                f"The '{variant}' variant is being made; try again shortly (the original "
                "can be linked now)."
            )
        raise NotFound(
            f"This item has no '{variant}' variant; it has: {', '.join(record.variants) or 'none'}."
        )
    token, claims = await request.app[LINKS].issue(
        "media",
        record.id,
        request[PRINCIPAL].id,
        ttl,
        now(request),
        variant=variant,
        disposition=disposition,
    )
    stated: dict[str, Any] = {}
    if reason is not None and decision.record:
        stated["reason_id"] = await reason.keep(record.shown_for)
    add(
        request,
        event(
            "link.issue",
            children=record.shown_for,
            item=record.id,
            variant=variant,
            ttl=ttl,
            **stated,
        ),
    )
    return Link(url=link_url(request, "media", token), expires_at=claims.expires)


@operation(
    "A short-lived link to one variant of an item.",
    tags=["links"],
    body=LinkRequest,
    answer=(201, Link),
    refusals=_MEDIA_ISSUED,
)
async def create_link(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].links
    body = await read_body(request, LinkRequest)
    ttl = _ttl(body.ttl_seconds, settings.media_default_ttl_seconds, settings.media_max_ttl_seconds)
    reason = stated_reason(request, body.reason)
    link = await _issue(
        request, request.match_info["id"], body.variant, ttl, body.disposition, reason
    )
    return answer(link, status=201)


@operation(
    "Links to many items at once (a timeline's thumbnails), up to 500; refusals per item "
    "(not_found, conflict, forbidden, consent_missing, outside_window, destroyed, "
    "restricted); the privacy officer gives a 'reason'.",
    tags=["links"],
    body=BatchRequest,
    answer=Links,
)
async def create_links(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS].links
    body = await read_body(request, BatchRequest)
    ttl = _ttl(body.ttl_seconds, settings.media_default_ttl_seconds, settings.media_max_ttl_seconds)
    reason = stated_reason(request, body.reason)
    out: list[IssuedLink | RefusedLink] = []
    for entry in body.items:
        try:
            link = await _issue(request, entry.item_id, entry.variant, ttl, "inline", reason)
        except _PER_ITEM as refusal:
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


async def deliver(
    request: web.Request,
    claims: Claims,
    facts: LinkFacts,
    variant: str,
    disposition: str,
    *,
    claim: Callable[[int, int, bool], Awaitable[None]] | None = None,
    settle: Callable[[int, int], Awaitable[None]] | None = None,
) -> web.StreamResponse:
    app = request.app
    record = facts.item.record
    blob = facts.item.blobs.get(variant)
    if blob is None:
        raise NotFound()
    expires = claims.expires
    moment = now(request)
    opened = await app[OPENED].open(app[KEYS], claims, facts, expires, moment)
    headers = opened.headers.get((variant, disposition))
    name = (
        safe_file_name(
            opened.file_name,
            f"{record.kind}-{record.created_at:%Y-%m-%d}",
            blob.content_type,
            variant,
        )
        if headers is None
        else ""
    )
    delivery = Delivery(record.id, blob, opened.key, disposition, name, expires, opened.ciphers)
    if headers is None:
        # Made once per link and variant: the facts they come from are the entry's.
        headers = opened.headers[(variant, disposition)] = headers_for(delivery, moment)

    async def on_the_record(status: int, start: int, end: int) -> None:
        # Fail closed: no byte leaves before this is committed (and claimed).
        note(request, variant=variant, status=status, offset=start, bytes=end - start)
        await record_now(request)
        if claim is not None and request.method != "HEAD":
            await claim(blob.plaintext_size, end - start, status == 200)

    return await serve(
        request,
        app[STORE],
        delivery,
        moment,
        before_send=on_the_record,
        after_send=settle,
        headers=headers,
    )


async def _answer(request: web.Request, claims: Claims, action: Action) -> LinkFacts:
    """The facts behind a verified link as they are now, asked of the policy again."""
    note(request, item=claims.subject, method=request.method)
    facts = await at_use.item_facts(request.app[FACTS], claims.principal, claims.subject)
    note(request, children=facts.item.record.shown_for)
    if claims.purpose == "media":
        # The link's holder acts as the person it was issued to.
        attribute(
            request,
            dataclasses.replace(
                caller(request), person=facts.principal.id, role=facts.principal.role
            ),
        )
    else:
        # A school, on behalf of the member of staff who handed it over.
        attribute(request, dataclasses.replace(caller(request), role="school"))
        note(request, handover=claims.reference, issued_by=facts.principal.id)
    at_use.allow(facts, action, now(request), rules(request.app))
    return facts


@operation(
    "The bytes a link names (GET or HEAD), checked against the policy at this moment: "
    "Range, If-Range, If-None-Match and If-Match as RFC 9110 has them.",
    tags=["links"],
    auth=False,
    link=True,
)
async def open_link(request: web.Request) -> web.StreamResponse:
    claims = await verified(request, "media")
    facts = await _answer(request, claims, Action.READ_ITEM)
    return await deliver(request, claims, facts, claims.variant, claims.disposition)


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
    handover_id = await handovers.create(
        request.app[DB],
        request.app[KEYS],
        record.id,
        request[PRINCIPAL].id,
        body.recipient,
        ttl,
        downloads,
        moment,
    )
    token, claims = await request.app[LINKS].issue(
        "handover",
        record.id,
        request[PRINCIPAL].id,
        ttl,
        moment,
        disposition="attachment",
        reference=handover_id,
    )
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
    row = await handovers.find(engine, claims)
    facts = await _answer(request, claims, Action.USE_HANDOVER)
    handovers.check_left(row, claims.expires)
    # What was claimed (filled in before the first byte leaves), for settle.
    claimed: dict[str, Any] = {}

    async def claim(size: int, nbytes: int, whole: bool) -> None:
        await handovers.claim(engine, row, size, nbytes, whole, claims.expires)
        claimed.update(size=size, whole=whole)

    async def settle(meant: int, sent: int) -> None:
        if claimed:  # nothing to give back for an answer that claimed nothing
            await handovers.settle(engine, row, claimed["size"], claimed["whole"], meant, sent)

    return await deliver(
        request, claims, facts, "original", "attachment", claim=claim, settle=settle
    )


def setup(app: web.Application) -> None:
    app[OPENED] = OpenedKeys()
    route(app, "POST", "/v1/items/{id}/links", create_link, audit="link.issue")
    route(app, "POST", "/v1/links", create_links, audit="link.issue")
    route(app, "POST", "/v1/items/{id}/handovers", create_handover, audit="handover.issue")
    route(app, "GET", "/l/{token}", open_link, audit="link.use")
    route(app, "GET", "/h/{token}", open_handover, audit="handover.use")
