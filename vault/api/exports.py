"""Export endpoints (API.md "Export"): a guardian's archive of a child's records.

``POST /v1/children/{id}/exports`` asks the policy (a guardian, while the
records are visible to guardians; the privacy officer, recorded), picks every
record of the asked kinds that the caller may read, plans the archive
(:mod:`vault.share.export`) and answers its link and exact size. The link
(``/x/<token>``) is checked like every link: signature, expiry, then the
policy for the child and for every record in it, as things are at that
moment. Since the archive must be the same bytes at every request (a broken
download resumes with Range), a record that was destroyed, changed
(rectified: its stamp in the plan differs) or is no longer visible to the
caller since the export was made stops the link, and so does the child's
first name (on index.html and in diary.json) corrected since; asking for a
new export gives one as things are now.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncGenerator

from aiohttp import web

from vault.api.access import PRINCIPAL, ask, check, load_child, now, rules, stated_reason
from vault.api.body import answer, read_body
from vault.api.links import link_url, verified
from vault.api.models.exports import ExportLink, ExportRequest
from vault.api.openapi import operation
from vault.api.resources import DB, KEYS, LINKS, READER, SETTINGS, STORE
from vault.api.routes import route
from vault.api.trail import attribute, caller, note, record_now
from vault.directory import consent
from vault.directory.children import read_profile
from vault.items import service
from vault.items.service import ChildCache
from vault.policy import KINDS, Action, ChildTarget, ItemTarget
from vault.share import archives, at_use, export
from vault.share.delivery import REVALIDATE, serve_ranged

_PAGE = 500


@operation(
    "Make an archive of the child's records for download (a guardian, while the records "
    "are visible): index.html, diary.json and the originals; the link lives up to 24 hours.",
    tags=["export"],
    body=ExportRequest,
    answer=(201, ExportLink),
    refusals={
        403: ("forbidden", "outside_window", "restricted"),
        404: ("not_found",),
        410: ("destroyed",),
    },
)
async def create_export(request: web.Request) -> web.Response:
    body = await read_body(request, ExportRequest)
    reason = stated_reason(request, body.reason)
    child = await load_child(request)
    decision = check(request, Action.EXPORT, ChildTarget(child), reason=reason is not None)
    kinds: list[str] = list(KINDS) if body.kinds is None else list(body.kinds)
    app = request.app
    cache = ChildCache(app[READER])
    chosen: list[str] = []
    before = None
    while True:
        batch = [r async for r in service.page_for_child(app[DB], child.id, None, before, _PAGE)]
        for record in batch:
            if record.kind not in kinds or record.destroyed_at is not None:
                continue
            target = ItemTarget(record.policy_item(), await cache.for_item(record))
            if ask(request, Action.READ_ITEM, target).allowed:  # only what this caller may see
                chosen.append(record.id)
        if len(batch) < _PAGE:
            break
        before = (batch[-1].created_at, batch[-1].id)
    sources = []
    for item_id, loaded, key_rows in await app[READER](
        lambda conn: at_use.records_with_keys(conn, chosen)
    ):
        if loaded is not None:
            key = await app[KEYS].unwrap_item_key(item_id, key_rows)
            sources.append(export.Source(loaded, key))
    moment = now(request)
    profile = await read_profile(app[DB], app[KEYS], child.id)
    plan = await export.plan(
        app[STORE],
        sources,
        child_id=child.id,
        first_name=profile.first_name,
        consents=consent.current(await consent.history(app[DB], child.id)),
        now=moment,
        zone=app[SETTINGS].uploads.camera_zone,
    )
    ttl = app[SETTINGS].links.export_max_ttl_hours * 3600
    export_id = await archives.save(
        app[DB], app[KEYS], child.id, request[PRINCIPAL].id, plan, moment, ttl
    )
    token, claims = await app[LINKS].issue(
        "export", export_id, request[PRINCIPAL].id, ttl, moment, disposition="attachment"
    )
    note(request, export=export_id, items=len(plan.items), size=plan.size, kinds=sorted(kinds))
    if reason is not None and decision.record:
        note(request, reason_id=await reason.keep([child.id]))
    url = link_url(request, "export", token)
    return answer(ExportLink(url=url, expires_at=claims.expires, size=plan.size), status=201)


@operation(
    "The export's ZIP (GET or HEAD), exactly 'size' bytes, checked against the policy for the "
    "child and every record in it at this moment; Range resumes a broken download.",
    tags=["export"],
    auth=False,
    link=True,
    content={"application/zip": {}},
)
async def open_export(request: web.Request) -> web.StreamResponse:
    app = request.app
    moment = now(request)
    claims = await verified(request, "export")
    note(request, export=claims.subject, method=request.method)
    row = await archives.find(app[DB], claims)
    note(request, children=[row.child_id])
    plan = await archives.plan_of(app[KEYS], row)
    facts = await at_use.export_facts(
        app[READER], app[KEYS], claims.principal, row.child_id, plan.records
    )
    attribute(
        request,
        dataclasses.replace(caller(request), person=facts.principal.id, role=facts.principal.role),
    )
    members = set(plan.items)  # a diary entry is checked, but its bytes are in the plan
    sources: dict[str, export.Source] = {}
    for item_id, loaded, key_rows in at_use.allow_export(facts, moment, rules(app), plan):
        if item_id not in members:
            continue
        key = await app[KEYS].unwrap_item_key(item_id, key_rows)
        sources[item_id] = export.Source(loaded, key)
    size = plan.size
    etag = '"' + hashlib.sha256(f"export/{row.id}/{size}".encode()).hexdigest()[:32] + '"'
    name = f"kluis-export-{row.created_at:%Y-%m-%d}.zip"
    headers = {
        "Content-Type": "application/zip",
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": REVALIDATE,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Referrer-Policy": "no-referrer",
        "Content-Disposition": f'attachment; filename="{name}"',
    }

    async def on_the_record(status: int, start: int, end: int) -> None:
        note(request, status=status, offset=start, bytes=end - start, size=size)
        await record_now(request)

    def body(start: int, end: int) -> AsyncGenerator[bytes, None]:
        return export.body(plan, app[STORE], sources, start, end)

    return await serve_ranged(request, size, headers, body, before_send=on_the_record)


def setup(app: web.Application) -> None:
    route(app, "POST", "/v1/children/{id}/exports", create_export, audit="export.create")
    route(app, "GET", "/x/{token}", open_export, audit="export.use")
