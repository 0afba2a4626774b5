"""Publication links (API.md 1.1; issue 19 item 6): a photo's preview on the
website, social media or in a newsletter.

``POST /v1/items/{id}/publications`` (the location manager) issues a signed
link of its own purpose (``/p/<token>``) to the ``preview`` variant only;
the policy (``publication.issue``) wants every child in the photo to have
``external_publication`` consent in force. Each use asks again
(``publication.use``, with the issuer as principal, facts read anew), so a
withdrawn consent, a destroyed record or a restriction stops the link at
its next use, as with every link. The publication is kept in table
``publications`` (which record, where to, by whom, until when).
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from aiohttp import web
from sqlalchemy import insert

from vault.api.access import PRINCIPAL, ask, now, rules
from vault.api.body import answer, read_body
from vault.api.links import deliver, link_url, verified
from vault.api.models.common import Link
from vault.api.models.links import PublicationRequest
from vault.api.openapi import operation
from vault.api.resources import DB, FACTS, LINKS, READER
from vault.api.routes import route
from vault.api.trail import attribute, caller, note
from vault.db.schema import publications
from vault.errors import NotFound
from vault.items import service
from vault.items.service import ChildCache
from vault.policy import Action, ItemTarget, enforce
from vault.share import at_use
from vault.tokens import new_id

DEFAULT_TTL = int(timedelta(days=7).total_seconds())
MAX_TTL = int(timedelta(days=30).total_seconds())
#: Only this variant is ever published.
PUBLISHED = "preview"


@operation(
    "Publish a photo's preview (the location manager), with every child's "
    "external_publication consent in force; the link lives 7 days (at most 30).",
    tags=["links"],
    body=PublicationRequest,
    answer=(201, Link),
    refusals={
        403: ("forbidden", "consent_missing", "outside_window", "restricted"),
        404: ("not_found",),
        410: ("destroyed",),
    },
)
async def publish(request: web.Request) -> web.Response:
    body = await read_body(request, PublicationRequest)
    item_id = request.match_info["id"]
    note(request, item=item_id, channel=body.channel)
    loaded = await service.load(request.app[READER], item_id)
    if loaded is None:
        raise NotFound()
    record = loaded.record
    note(request, children=record.shown_for)
    children = await ChildCache(request.app[READER]).for_item(record)
    enforce(ask(request, Action.ISSUE_PUBLICATION, ItemTarget(record.policy_item(), children)))
    if PUBLISHED not in record.variants:
        raise NotFound("This photo has no preview to publish.")
    ttl = DEFAULT_TTL if body.ttl_seconds is None else min(body.ttl_seconds, MAX_TTL)
    moment = now(request)
    publication_id = new_id()
    token, claims = await request.app[LINKS].issue(
        "publication",
        record.id,
        request[PRINCIPAL].id,
        ttl,
        moment,
        variant=PUBLISHED,
        disposition="inline",
        reference=publication_id,
    )
    async with request.app[DB].begin() as conn:
        await conn.execute(
            insert(publications).values(
                id=publication_id,
                item_id=record.id,
                channel=body.channel,
                issued_by=request[PRINCIPAL].id,
                created_at=moment,
                expires_at=claims.expires,
            )
        )
    note(request, publication=publication_id, ttl=ttl)
    url = link_url(request, "publication", token)
    return answer(Link(url=url, expires_at=claims.expires), status=201)


@operation(
    "A published preview (GET or HEAD), checked against the policy and every child's "
    "publication consent at this moment.",
    tags=["links"],
    auth=False,
    link=True,
)
async def open_publication(request: web.Request) -> web.StreamResponse:
    claims = await verified(request, "publication")
    note(request, item=claims.subject, method=request.method, publication=claims.reference)
    facts = await at_use.item_facts(request.app[FACTS], claims.principal, claims.subject)
    note(request, children=facts.item.record.shown_for, issued_by=facts.principal.id)
    attribute(request, dataclasses.replace(caller(request), role="public"))
    at_use.allow(facts, Action.USE_PUBLICATION, now(request), rules(request.app))
    return await deliver(request, claims, facts, PUBLISHED, "inline")


def setup(app: web.Application) -> None:
    route(app, "POST", "/v1/items/{id}/publications", publish, audit="publication.issue")
    route(app, "GET", "/p/{token}", open_publication, audit="publication.use")
